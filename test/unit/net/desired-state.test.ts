import { describe, expect, it } from "vitest";
import { renderIpBatch, renderIptables } from "../../../src/net/apply.js";
import { diff, EMPTY_STATE, type NetState, type Scope, within } from "../../../src/net/desired-state.js";

const scope: Scope = {
  link: (n) => n.startsWith("te-"),
  rule: (r) => r.table === 200,
  routeTable: (t) => t === 200,
  chain: (_t, n) => n.startsWith("TE-"),
  tcRoot: () => false,
  tcClass: () => false,
  nftChain: () => false,
};

const desired: NetState = {
  links: [
    {
      name: "te-eth0",
      vni: 100,
      port: 4789,
      local: "10.0.0.2",
      remote: "10.0.0.9",
      dev: "eth0",
      mtu: 1450,
      mac: "02:7e:ac:10:00:02",
      learning: false,
      ageing: 300,
    },
  ],
  addresses: [{ dev: "te-eth0", local: "172.16.0.2", prefix: 32, peer: "172.16.0.1" }],
  rules: [{ priority: 1000, fwmark: "0xa/0xff", table: 200 }],
  routes: [{ table: 200, type: "throw", dst: "10.0.0.9" }],
  sysctls: [{ dev: "te-eth0", name: "rp_filter", value: 2 }],
  chains: [{ table: "nat", name: "TE-SNAT", rules: ["-o te-eth0 -j SNAT --to-source 172.16.0.2"] }],
  jumps: [{ table: "nat", hook: "POSTROUTING", match: "", chain: "TE-SNAT", first: true }],
  neighbours: [],
  qdiscs: [],
  classes: [],
  nftTables: [],
};

const foreign: NetState = {
  ...EMPTY_STATE,
  rules: [{ priority: 500, fwmark: "0x1/0x1", table: 100 }],
  chains: [{ table: "nat", name: "DOCKER", rules: ["-j RETURN"] }],
  jumps: [{ table: "nat", hook: "PREROUTING", match: "", chain: "DOCKER", first: false }],
};

describe("diff", () => {
  it("is empty when observed equals desired", () => {
    expect(diff(desired, desired, scope).problems).toEqual([]);
  });

  it("adds everything to an empty namespace and names each missing piece", () => {
    const c = diff(desired, EMPTY_STATE, scope);
    expect(c.addLinks).toHaveLength(1);
    expect(c.problems).toContain("link te-eth0 is missing");
    // Pieces that go with a new link are re-added but not reported twice.
    expect(c.addAddresses).toHaveLength(1);
    expect(c.problems.some((p) => p.startsWith("address"))).toBe(false);
  });

  it("removes only what is in scope when the desired state is empty", () => {
    const observed: NetState = {
      ...desired,
      rules: [...desired.rules, ...foreign.rules],
      chains: [...desired.chains, ...foreign.chains],
      jumps: [...desired.jumps, ...foreign.jumps],
    };
    const c = diff(EMPTY_STATE, observed, scope);
    expect(c.delLinks).toEqual(["te-eth0"]);
    expect(c.delRules).toEqual(desired.rules);
    expect(c.delChains.map((x) => x.name)).toEqual(["TE-SNAT"]);
    expect(c.delJumps.map((x) => x.chain)).toEqual(["TE-SNAT"]);
    // Addresses and routes through a deleted link go with it: no separate commands.
    expect(c.delAddresses).toEqual([]);
    expect(renderIptables(c)).toBe("*nat\n:TE-SNAT - [0:0]\n-D POSTROUTING -j TE-SNAT\n-X TE-SNAT\nCOMMIT\n");
  });

  it("recreates a link whose vxlan identity changed, and re-adds what it carried", () => {
    const observed: NetState = { ...desired, links: [{ ...desired.links[0]!, remote: "10.0.0.8" }] };
    const c = diff(desired, observed, scope);
    expect(c.delLinks).toEqual(["te-eth0"]);
    expect(c.addLinks).toHaveLength(1);
    expect(c.addAddresses).toHaveLength(1);
    expect(c.sysctls).toHaveLength(1);
    const batch = renderIpBatch(c);
    expect(batch.indexOf("link del dev te-eth0")).toBeLessThan(batch.findIndex((l) => l.startsWith("link add")));
  });

  it("fixes an MTU in place", () => {
    const c = diff(desired, { ...desired, links: [{ ...desired.links[0]!, mtu: 1500 }] }, scope);
    expect(c.setLinks).toHaveLength(1);
    expect(c.addLinks).toHaveLength(0);
  });

  it("rewrites a chain whose rules differ", () => {
    const c = diff(desired, { ...desired, chains: [{ ...desired.chains[0]!, rules: [] }] }, scope);
    expect(c.writeChains).toHaveLength(1);
    expect(c.problems).toEqual(["iptables chain TE-SNAT (nat) is different"]);
  });

  it("within() keeps only the scoped part of an observation", () => {
    const observed: NetState = { ...desired, rules: [...desired.rules, ...foreign.rules], chains: [...foreign.chains] };
    expect(within(observed, scope).rules).toEqual(desired.rules);
    expect(within(observed, scope).chains).toEqual([]);
  });
});
