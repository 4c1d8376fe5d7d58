import { describe, expect, it } from "vitest";
import { renderBatches } from "../../../src/net/apply.js";
import { diff, emptyState, stateOf } from "../../../src/net/desired-state.js";
import { parseConfig } from "../../../src/pod/config.js";
import { names } from "../../../src/pod/names.js";
import { planPod, podScope } from "../../../src/pod/plan.js";
import { selectGateway } from "../../../src/pod/select-gateway.js";
import { chooseSlot, recordedSlot } from "../../../src/pod/slots.js";

const config = parseConfig({
  cniVersion: "1.0.0",
  type: "tenant-egress",
  gateway: "10.23.0.2",
  excludeCIDRs: ["203.0.113.128/25"],
});
const attachment = selectGateway(config, new Map())!;
const slot = { table: 200, priority: 1000, mark: "0xa/0xff" };
const inputs = {
  ifname: "eth0",
  podIP: "10.22.0.5",
  overlayIP: "172.16.0.5",
  underlayMtu: 1500,
  defaultRoute: true,
  slot,
};

describe("planPod", () => {
  const state = planPod(config, attachment, inputs);

  it("creates the tunnel to the gateway with a derived MAC and MTU = underlay - 50", () => {
    expect(state.links).toEqual([
      {
        name: "te-eth0",
        vni: 100,
        port: 4789,
        local: "10.22.0.5",
        remote: "10.23.0.2",
        dev: "eth0",
        mtu: 1450,
        mac: "02:7e:ac:10:00:05",
        learning: false,
        ageing: 300,
        alias: "tenant-egress:slot:200:1000:0xa/0xff",
      },
    ]);
  });

  it("routes marked traffic into the tunnel and throws the gateway's underlay address back to main", () => {
    expect(state.rules).toEqual([{ priority: 1000, fwmark: "0xa/0xff", table: 200 }]);
    expect(state.routes).toEqual([
      { table: 200, type: "unicast", dst: "default", gateway: "172.16.0.1", dev: "te-eth0", onlink: true },
      { table: 200, type: "throw", dst: "10.23.0.2" },
    ]);
  });

  it("never marks excluded destinations, the overlay or the gateway itself", () => {
    const mark = state.chains.find((c) => c.name === "TE-MARK-eth0")!;
    expect(mark.rules).toContain("-d 169.254.0.0/16 -j RETURN");
    expect(mark.rules).toContain("-d 203.0.113.128/25 -j RETURN");
    expect(mark.rules).toContain("-d 10.23.0.2/32 -j RETURN");
    expect(mark.rules.at(-1)).toBe("-j MARK --set-xmark 0xa/0xff");
  });

  it("clamps MSS both ways and SNATs to the overlay address", () => {
    expect(state.chains.find((c) => c.name === "TE-MSS-eth0")!.rules).toEqual([
      "-o te-eth0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1410",
      "-i te-eth0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1410",
    ]);
    expect(state.chains.find((c) => c.name === "TE-SNAT-eth0")!.rules).toEqual([
      "-o te-eth0 -j SNAT --to-source 172.16.0.5",
    ]);
  });

  it("honours explicit mtu and mss", () => {
    const c = parseConfig({ cniVersion: "1.0.0", type: "tenant-egress", gateway: "10.23.0.2", mtu: 1400, mss: 1300 });
    const s = planPod(c, selectGateway(c, new Map())!, inputs);
    expect(s.links[0]!.mtu).toBe(1400);
    expect(s.chains.find((x) => x.name === "TE-MSS-eth0")!.rules[0]).toMatch(/--set-mss 1300$/);
  });

  it("renders one ip batch, one iptables-restore and one sysctl call for a fresh pod", () => {
    const b = renderBatches(diff(state, emptyState(), podScope("eth0", [slot])));
    expect(b.ip!.trimEnd().split("\n")).toEqual([
      "link add te-eth0 type vxlan id 100 dstport 4789 local 10.22.0.5 remote 10.23.0.2 dev eth0 nolearning ageing 300",
      "link set dev te-eth0 address 02:7e:ac:10:00:05 mtu 1450 alias tenant-egress:slot:200:1000:0xa/0xff up",
      "addr replace 172.16.0.5 peer 172.16.0.1 dev te-eth0",
      "rule add pref 1000 fwmark 0xa/0xff lookup 200",
      "route replace default via 172.16.0.1 dev te-eth0 onlink table 200",
      "route replace throw 10.23.0.2 table 200",
    ]);
    const ipt = b.iptables!;
    expect(ipt).toMatch(/^\*mangle\n:TE-MARK-eth0 - \[0:0\]\n:TE-MSS-eth0 - \[0:0\]\n/);
    expect(ipt).toContain("-I OUTPUT 1 -o eth0 -j TE-MARK-eth0\n");
    expect(ipt).toContain("-I PREROUTING 1 -j TE-MARK-eth0\n");
    expect(ipt).toContain("-I POSTROUTING 1 -j TE-SNAT-eth0\n");
    expect(ipt.match(/COMMIT/g)).toHaveLength(2);
    expect(b.sysctl).toEqual(["net/ipv4/conf/te-eth0/rp_filter=2"]);
  });

  it("wants the tunnel's rp_filter not strict: with conf/all off or loose, off does as well", () => {
    const rp = (allRpFilter?: number) => planPod(config, attachment, { ...inputs, allRpFilter }).sysctls;
    expect(rp()).toEqual([{ dev: "te-eth0", name: "rp_filter", value: 2, accept: [] }]);
    expect(rp(1)).toEqual([{ dev: "te-eth0", name: "rp_filter", value: 2, accept: [] }]);
    expect(rp(0)).toEqual([{ dev: "te-eth0", name: "rp_filter", value: 2, accept: [0] }]);
    expect(rp(2)).toEqual([{ dev: "te-eth0", name: "rp_filter", value: 2, accept: [0, 1] }]);
  });

  it("derives short, distinct names for long interface names", () => {
    expect(names("eth0").device).toBe("te-eth0");
    const long = names("averyverylongif");
    expect(long.device).toMatch(/^te-h[0-9a-f]{8}$/);
    expect(long.device.length).toBeLessThanOrEqual(15);
    expect(names("averyverylongiX").device).not.toBe(long.device);
  });
});

describe("attachment slots", () => {
  const tunnel = (ifname: string, alias: string) => ({
    ...planPod(config, attachment, { ...inputs, ifname }).links[0]!,
    alias,
  });

  it("gives a second attachment of the pod the next table, priority and mark, and keeps what one holds", () => {
    const pod = stateOf({ links: [tunnel("eth0", "tenant-egress:slot:200:1000:0xa/0xff")] });
    expect(chooseSlot(config, pod, "eth0")).toEqual({ table: 200, priority: 1000, mark: "0xa/0xff" });
    expect(chooseSlot(config, pod, "net1")).toEqual({ table: 201, priority: 1001, mark: "0xb/0xff" });
  });

  it("says so when the slots or the mask are exhausted", () => {
    const one = parseConfig({ cniVersion: "1.0.0", type: "tenant-egress", gateway: "10.23.0.2", attachmentSlots: 1 });
    const pod = stateOf({ links: [tunnel("eth0", "tenant-egress:slot:200:1000:0xa/0xff")] });
    expect(() => chooseSlot(one, pod, "net1")).toThrow(/other tenant-egress attachments hold all 1/);
    const full = parseConfig({ cniVersion: "1.0.0", type: "tenant-egress", gateway: "10.23.0.2", mark: "0x1/0x1" });
    expect(() => chooseSlot(full, pod, "net1")).toThrow(/mark 0x1\/0x1 has no value left under its mask/);
  });

  it("finds the slot an attachment recorded whatever the config says now, also from its mark chain alone", () => {
    const moved = parseConfig({ cniVersion: "1.0.0", type: "tenant-egress", gateway: "10.23.0.2", routeTable: 300 });
    const held = planPod(config, attachment, inputs);
    expect(recordedSlot(held, "eth0")).toEqual(slot);
    expect(recordedSlot({ ...held, links: [] }, "eth0")).toEqual(slot);
    expect(chooseSlot(moved, held, "eth0")).toEqual({ table: 300, priority: 1000, mark: "0xa/0xff" });
  });
});
