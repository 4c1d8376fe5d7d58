import { describe, expect, it } from "vitest";
import { canonicalNftRule, diff, EMPTY_STATE } from "../../../src/net/desired-state.js";
import { renderNft } from "../../../src/net/apply.js";
import { parseNftRuleset } from "../../../src/net/observe.js";
import { parseConfig } from "../../../src/pod/config.js";
import { enforcementScope, hostSide, planEnforcement, staleEnforcement } from "../../../src/pod/enforce.js";
import { enforceNames } from "../../../src/pod/names.js";
import { selectGateway } from "../../../src/pod/select-gateway.js";

const config = parseConfig({ cniVersion: "1.0.0", type: "tenant-egress", gateway: "10.23.0.2", vni: 300, enforce: true, excludeCIDRs: ["198.18.0.0/15", "10.96.0.0/12"] });
const a = selectGateway(config, new Map())!;
const pod = { network: "net", containerId: "abc", ifname: "eth0", identity: { ipv4: ["10.22.0.5"], ipv6: ["fd00:22::5"], mac: "0a:58:0a:16:00:05" }, hostDevice: "veth1234" };

describe("planEnforcement", () => {
  const s = planEnforcement(config, a, pod);
  const t = s.nftTables[0]!;
  const rules = t.chains[0]!.rules;

  it("hooks the host side's ingress, dropping what it does not accept", () => {
    expect(t).toMatchObject({ family: "netdev", name: enforceNames("net", "abc", "eth0").table, comment: "tenant-egress:net:abc/eth0" });
    expect(t.chains[0]).toMatchObject({ hook: "ingress", device: "veth1234", policy: "drop" });
  });

  it("pins the MAC and the sources, then lets only the pod's own tunnel and private traffic through, in that order", () => {
    expect(rules[0]).toBe("ether saddr != 0a:58:0a:16:00:05 drop");
    expect(rules[2]).toBe("ip saddr != { 10.22.0.5 } drop");
    expect(rules[3]).toBe("ip daddr 10.23.0.2 udp dport 4789 @th,96,24 0x12c accept");
    expect(rules[4]).toBe("udp dport 4789 drop");
    expect(rules[5]).toContain("198.18.0.0/15");
    // 10.96.0.0/12 lies inside the built-in 10.0.0.0/8: nft's interval sets reject overlaps.
    expect(rules[5]).not.toContain("10.96.0.0/12");
    expect(rules[6]).toBe("ip6 saddr != { ::, fe80::/10, fd00:22::5 } drop");
  });

  it("names each attachment apart, per network too", () => {
    const n = enforceNames("net", "abc", "eth0").table;
    expect(enforceNames("net", "abc", "net1").table).not.toBe(n);
    expect(enforceNames("other", "abc", "eth0").table).not.toBe(n);
  });

  it("compares equal to what nft prints back (sorted sets, one element without braces)", () => {
    const printed = { ...t, chains: [{ ...t.chains[0]!, rules: rules.map((r) => r.replace("{ 10.22.0.5 }", "10.22.0.5").replace("{ ::, fe80::/10, fd00:22::5 }", "{ ::, fd00:22::5, fe80::/10 }")) }] };
    expect(diff(s, { ...EMPTY_STATE, nftTables: [printed] }, enforcementScope(new Set([t.name]))).problems).toEqual([]);
    expect(canonicalNftRule("ip daddr { b, a } accept")).toBe("ip daddr { a, b } accept");
  });

  it("renders one idempotent transaction, and parses back what nft lists", () => {
    const c = diff(s, EMPTY_STATE, enforcementScope(new Set([t.name])));
    const script = renderNft(c);
    expect(script.split("\n").slice(0, 2)).toEqual([`add table netdev ${t.name}`, `delete table netdev ${t.name}`]);
    const listed = script.split("\n").slice(2).join("\n").replace(/^table/m, "table");
    expect(parseNftRuleset(listed)).toEqual([t]);
  });
});

describe("hostSide", () => {
  const podLinks = [{ ifname: "eth0", mtu: 1500, ifindex: 2, link_index: 7, link_netnsid: 0 }];
  it("is the node's veth whose peer is the pod's interface", () => {
    const veths = [
      { ifname: "vethA", mtu: 1500, ifindex: 7, link_index: 3 },
      { ifname: "vethB", mtu: 1500, ifindex: 7, link_index: 2 },
    ];
    // Only both indexes together identify it (ifindex 7 in another namespace is a different device).
    expect(() => hostSide(podLinks, veths.slice(0, 1), "eth0")).toThrow(/no veth .* peer of eth0/);
    expect(hostSide(podLinks, [{ ...veths[1]!, ifindex: 7 }], "eth0")).toBe("vethB");
  });
});

describe("staleEnforcement", () => {
  const table = (network: string, owner: string, i: number) => ({ family: "netdev" as const, name: `te-enf-${i}`, comment: `tenant-egress:${network}:${owner}`, chains: [] });

  it("names this network's tables whose attachment is not valid, never another network's", () => {
    const observed = { ...EMPTY_STATE, nftTables: [table("net", "a/eth0", 0), table("net", "b/eth0", 1), table("net", "a/net1", 2), table("other", "z/eth0", 3)] };
    expect([...staleEnforcement(observed, "net", [{ containerID: "a", ifname: "eth0" }])].sort()).toEqual(["te-enf-1", "te-enf-2"]);
  });
});
