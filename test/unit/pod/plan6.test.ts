import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../src/pod/config.js";
import { planPod6 } from "../../../src/pod/plan6.js";
import { selectGateway } from "../../../src/pod/select-gateway.js";

const config = parseConfig({
  cniVersion: "1.0.0",
  type: "tenant-egress",
  gateway: "10.23.0.2",
  excludeCIDRs: ["203.0.113.128/25", "2001:DB8:Cafe:0::/48"],
});
const attachment = selectGateway(config, new Map())!;
const slot = { table: 200, priority: 1000, mark: "0xa/0xff" };
const inputs = { ifname: "eth0", overlayIP6: "fd00:64:7e7e::5", mss4: 1410, slot, defaultRoute: true };
const state = planPod6(config, attachment, inputs);

describe("planPod6", () => {
  it("holds the overlay IPv6 as a /128 on the tunnel and routes marked IPv6 via the gateway's overlay IPv6", () => {
    expect(state.address).toEqual({ dev: "te-eth0", local: "fd00:64:7e7e::5", prefix: 128 });
    expect(state.rules).toEqual([{ priority: 1000, fwmark: "0xa/0xff", table: 200 }]);
    expect(state.routes).toEqual([
      { table: 200, type: "unicast", dst: "default", gateway: "fd00:64:7e7e::1", dev: "te-eth0", onlink: true },
    ]);
  });

  it("marks public IPv6 only: never loopback, link-local, ULA, multicast, IPv6 exclusions or the overlay", () => {
    const mark = state.chains.find((c) => c.name === "TE-MARK-eth0")!;
    expect(mark.rules).toEqual([
      "-m mark ! --mark 0x0/0xff -j RETURN",
      "-d ::1/128 -j RETURN",
      "-d fe80::/10 -j RETURN",
      "-d fc00::/7 -j RETURN",
      "-d ff00::/8 -j RETURN",
      "-d 2001:db8:cafe::/48 -j RETURN",
      "-d fd00:64:7e7e::/48 -j RETURN",
      "-j MARK --set-xmark 0xa/0xff",
    ]);
  });

  it("clamps the MSS at tunnel MTU - 60, SNATs to the overlay IPv6 and drops router advertisements from the tunnel", () => {
    expect(state.chains.find((c) => c.name === "TE-MSS-eth0")!.rules).toEqual([
      "-o te-eth0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1390",
      "-i te-eth0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1390",
      "-i te-eth0 -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP",
    ]);
    expect(state.chains.find((c) => c.name === "TE-SNAT-eth0")!.rules).toEqual([
      "-o te-eth0 -j SNAT --to-source fd00:64:7e7e::5",
    ]);
  });

  it("takes the attachment's slot, as its IPv4 half does: table, priority and mark", () => {
    const second = planPod6(config, attachment, { ...inputs, slot: { table: 201, priority: 1001, mark: "0xb/0xff" } });
    expect(second.rules).toEqual([{ priority: 1001, fwmark: "0xb/0xff", table: 201 }]);
    expect(second.routes.map((r) => r.table)).toEqual([201]);
    expect(second.chains.find((c) => c.name === "TE-MARK-eth0")!.rules.at(-1)).toBe("-j MARK --set-xmark 0xb/0xff");
  });

  it("marks in OUTPUT only what leaves its interface, and forwarded IPv6 only if it holds the IPv6 default route", () => {
    const markJumps = (s: typeof state) => s.jumps.filter((j) => j.chain === "TE-MARK-eth0");
    expect(markJumps(state)).toEqual([
      { table: "mangle", hook: "OUTPUT", match: "-o eth0", chain: "TE-MARK-eth0", first: true },
      { table: "mangle", hook: "PREROUTING", match: "", chain: "TE-MARK-eth0", first: true },
    ]);
    expect(markJumps(planPod6(config, attachment, { ...inputs, defaultRoute: false }))).toEqual([
      { table: "mangle", hook: "OUTPUT", match: "-o eth0", chain: "TE-MARK-eth0", first: true },
    ]);
  });
});
