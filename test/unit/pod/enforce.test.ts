import { describe, expect, it } from "vitest";
import { renderBatches } from "../../../src/net/apply.js";
import { diff, emptyState, problems, stateOf } from "../../../src/net/desired-state.js";
import { canonicalNftRule } from "../../../src/net/kinds.js";
import { parseNftRuleset } from "../../../src/net/observe.js";
import { parseConfig } from "../../../src/pod/config.js";
import { enforcementScope, hostSide, planEnforcement, staleEnforcement } from "../../../src/pod/enforce.js";
import { enforceNames } from "../../../src/pod/names.js";
import { selectGateway } from "../../../src/pod/select-gateway.js";

const config = parseConfig({
  cniVersion: "1.0.0",
  type: "tenant-egress",
  gateway: "10.23.0.2",
  vni: 300,
  enforce: true,
  excludeCIDRs: ["198.18.0.0/15", "10.96.0.0/12", "2001:DB8:CAFE:0::/48", "fd00:96::/64"],
});
const a = selectGateway(config, new Map())!;
const pod = {
  network: "net",
  containerId: "abc",
  ifname: "eth0",
  identity: { ipv4: ["10.22.0.5"], ipv6: ["fd00:22::5"], mac: "0a:58:0a:16:00:05" },
  hostDevice: "veth1234",
};

describe("planEnforcement", () => {
  const s = planEnforcement(config, a, pod);
  const ch = s.nftChains[0]!;
  const rules = ch.rules;

  it("hooks the host side's ingress, dropping what it does not accept", () => {
    expect(ch).toMatchObject({
      family: "netdev",
      table: "tenant-egress",
      name: enforceNames("net", "abc", "eth0").chain,
      comment: "tenant-egress:net:abc/eth0",
      hook: "ingress",
      device: "veth1234",
      policy: "drop",
    });
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
    // The IPv6 excludeCIDRs pass direct too (canonical, as nft prints them; fd00:96::/64 is inside fc00::/7).
    expect(rules[7]).toBe("ip6 daddr { fe80::/10, ff02::/16, fc00::/7, 2001:db8:cafe::/48 } accept");
  });

  it("names each attachment apart, per network too", () => {
    const n = enforceNames("net", "abc", "eth0").chain;
    expect(enforceNames("net", "abc", "net1").chain).not.toBe(n);
    expect(enforceNames("other", "abc", "eth0").chain).not.toBe(n);
  });

  it("compares equal to what nft prints back (sorted sets, one element without braces)", () => {
    const printed = {
      ...ch,
      rules: rules.map((r) =>
        r
          .replace("{ 10.22.0.5 }", "10.22.0.5")
          .replace("{ ::, fe80::/10, fd00:22::5 }", "{ ::, fd00:22::5, fe80::/10 }")
          .replace(
            "{ fe80::/10, ff02::/16, fc00::/7, 2001:db8:cafe::/48 }",
            "{ 2001:db8:cafe::/48, fc00::/7, fe80::/10, ff02::/16 }",
          ),
      ),
    };
    expect(diff(s, stateOf({ nftChains: [printed] }), enforcementScope(new Set([ch.name])))).toEqual([]);
    expect(canonicalNftRule("ip daddr { b, a } accept")).toBe("ip daddr { a, b } accept");
  });

  it("renders one idempotent transaction, and parses back what nft lists", () => {
    const c = diff(s, emptyState(), enforcementScope(new Set([ch.name])));
    expect(problems(c)).toEqual([`nftables chain ${ch.name} (netdev tenant-egress) is missing`]);
    const at = `netdev tenant-egress ${ch.name}`;
    expect(renderBatches(c).nft!.split("\n").slice(0, 5)).toEqual([
      "add table netdev tenant-egress",
      `add chain ${at}`,
      `flush chain ${at}`,
      `delete chain ${at}`,
      expect.stringMatching(
        /^add chain .* \{ type filter hook ingress device "veth1234" priority -500; policy drop; comment "tenant-egress:net:abc\/eth0"; \}$/,
      ),
    ]);
    const listed = [
      "table netdev tenant-egress {",
      `\tchain ${ch.name} {`,
      `\t\tcomment "${ch.comment}"`,
      '\t\ttype filter hook ingress device "veth1234" priority -500; policy drop;',
      ...rules.map((r) => `\t\t${r}`),
      "\t}",
      "\tchain other {",
      "\t}",
      "}",
    ].join("\n");
    expect(parseNftRuleset(listed)[0]).toEqual(ch);
  });
});

describe("hostSide", () => {
  const podLinks = [{ name: "eth0", mtu: 1500, mac: "", ifindex: 2, peer: { ifindex: 7, elsewhere: true } }];
  it("is the node's veth whose peer is the pod's interface", () => {
    const veths = [
      { name: "vethA", mtu: 1500, mac: "", ifindex: 7, peer: { ifindex: 3, elsewhere: true } },
      { name: "vethB", mtu: 1500, mac: "", ifindex: 7, peer: { ifindex: 2, elsewhere: true } },
    ];
    // Only both indexes together identify it (ifindex 7 in another namespace is a different device).
    expect(() => hostSide(podLinks, veths.slice(0, 1), "eth0")).toThrow(/no veth .* peer of eth0/);
    expect(hostSide(podLinks, [{ ...veths[1]!, ifindex: 7 }], "eth0")).toBe("vethB");
  });
});

describe("staleEnforcement", () => {
  const chain = (network: string, owner: string, i: number) => ({
    family: "netdev" as const,
    table: "tenant-egress",
    name: `te-${i}`,
    hook: "ingress" as const,
    device: "v",
    priority: -500,
    policy: "drop" as const,
    comment: `tenant-egress:${network}:${owner}`,
    rules: [],
  });

  it("names this network's chains whose attachment is not valid, never another network's", () => {
    const chains = [
      chain("net", "a/eth0", 0),
      chain("net", "b/eth0", 1),
      chain("net", "a/net1", 2),
      chain("other", "z/eth0", 3),
    ];
    const observed = stateOf({ nftChains: chains });
    expect([...staleEnforcement(observed, "net", [{ containerID: "a", ifname: "eth0" }])].sort()).toEqual([
      "te-1",
      "te-2",
    ]);
  });
});
