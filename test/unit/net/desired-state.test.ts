import { describe, expect, it } from "vitest";
import { renderBatches } from "../../../src/net/apply.js";
import {
  type AnyChange,
  diff,
  emptyState,
  type NetState,
  problems,
  type Scope,
  stateOf,
  within,
} from "../../../src/net/desired-state.js";

const scope: Scope = {
  link: (n) => n.startsWith("te-"),
  rule: (r) => r.table === 200,
  routeTable: (t) => t === 200,
  chain: (_t, n) => n.startsWith("TE-"),
};

const desired: NetState = stateOf({
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
});

const foreign: NetState = stateOf({
  rules: [{ priority: 500, fwmark: "0x1/0x1", table: 100 }],
  chains: [{ table: "nat", name: "DOCKER", rules: ["-j RETURN"] }],
  jumps: [{ table: "nat", hook: "PREROUTING", match: "", chain: "DOCKER", first: false }],
});

/** The change list in short: kind, op, and whether it is reported. */
const ops = (changes: AnyChange[]) => changes.map((c) => `${c.kind} ${c.op}${c.quiet ? " (quiet)" : ""}`);

describe("diff", () => {
  it("is empty when observed equals desired", () => {
    expect(diff(desired, desired, scope)).toEqual([]);
  });

  it("adds everything to an empty namespace and names each missing piece once", () => {
    const c = diff(desired, emptyState(), scope);
    expect(ops(c)).toEqual([
      "links add",
      // Pieces that go with a new link are re-added but not reported twice.
      "addresses add (quiet)",
      "rules add",
      "routes add",
      "sysctls add (quiet)",
      "chains add",
      "jumps add",
    ]);
    expect(problems(c)).toEqual([
      "link te-eth0 is missing",
      "ip rule fwmark 0xa/0xff lookup 200 is missing",
      "route throw 10.0.0.9 table 200 is missing",
      "iptables chain TE-SNAT (nat) is missing",
      "iptables jump POSTROUTING -j TE-SNAT (nat) is missing",
    ]);
  });

  it("removes only what is in scope when the desired state is empty", () => {
    const observed: NetState = {
      ...desired,
      rules: [...desired.rules, ...foreign.rules],
      chains: [...desired.chains, ...foreign.chains],
      jumps: [...desired.jumps, ...foreign.jumps],
    };
    const c = diff(emptyState(), observed, scope);
    // Addresses through a deleted link go with it: no separate commands; sysctls are never reverted.
    expect(ops(c)).toEqual(["links delete", "rules delete", "routes delete", "chains delete", "jumps delete"]);
    expect(c.find((x) => x.kind === "rules")?.object).toEqual(desired.rules[0]);
    const b = renderBatches(c);
    expect(b.iptables).toBe("*nat\n:TE-SNAT - [0:0]\n-D POSTROUTING -j TE-SNAT\n-X TE-SNAT\nCOMMIT\n");
    expect(b.ip).toBe(
      "route del throw 10.0.0.9 table 200\nrule del pref 1000 fwmark 0xa/0xff lookup 200\nlink del dev te-eth0\n",
    );
  });

  it("recreates a link whose vxlan identity changed, and re-adds what it carried", () => {
    const observed: NetState = { ...desired, links: [{ ...desired.links[0]!, remote: "10.0.0.8" }] };
    const c = diff(desired, observed, scope);
    expect(ops(c)).toEqual(["links replace", "addresses add (quiet)", "sysctls add (quiet)"]);
    const batch = renderBatches(c).ip!.split("\n");
    expect(batch.indexOf("link del dev te-eth0")).toBeLessThan(batch.findIndex((l) => l.startsWith("link add")));
    expect(renderBatches(c).sysctl).toEqual(["net/ipv4/conf/te-eth0/rp_filter=2"]);
  });

  it("writes no sysctl for a new device when the value conf/default gives it will do, and writes it otherwise", () => {
    const loose = { ...desired, sysctls: [{ dev: "te-eth0", name: "rp_filter" as const, value: 2, accept: [0] }] };
    const withDefault = (value: number) => stateOf({ sysctls: [{ dev: "default", name: "rp_filter", value }] });
    expect(ops(diff(loose, withDefault(0), scope)).filter((o) => o.startsWith("sysctls"))).toEqual([]);
    expect(renderBatches(diff(loose, withDefault(1), scope)).sysctl).toEqual(["net/ipv4/conf/te-eth0/rp_filter=2"]);
    // Without conf/default observed nothing can be assumed.
    expect(renderBatches(diff(loose, emptyState(), scope)).sysctl).toEqual(["net/ipv4/conf/te-eth0/rp_filter=2"]);
  });

  it("accepts a sysctl value within its tolerance and names the values that would do when it is not", () => {
    const want = { ...desired, sysctls: [{ dev: "te-eth0", name: "rp_filter" as const, value: 2, accept: [0] }] };
    const have = (value: number) => ({ ...desired, sysctls: [{ dev: "te-eth0", name: "rp_filter" as const, value }] });
    expect(diff(want, have(0), scope)).toEqual([]);
    expect(problems(diff(want, have(1), scope))).toEqual(["sysctl rp_filter on te-eth0 is 1, want 2 or 0"]);
  });

  it("fixes an MTU in place", () => {
    const c = diff(desired, { ...desired, links: [{ ...desired.links[0]!, mtu: 1500 }] }, scope);
    expect(ops(c)).toEqual(["links change"]);
    expect(renderBatches(c).ip).toBe("link set dev te-eth0 address 02:7e:ac:10:00:02 mtu 1450 up\n");
  });

  it("rewrites a chain whose rules differ", () => {
    const c = diff(desired, { ...desired, chains: [{ ...desired.chains[0]!, rules: [] }] }, scope);
    expect(ops(c)).toEqual(["chains replace"]);
    expect(problems(c)).toEqual([
      'iptables chain TE-SNAT (nat) has 0 rules, want 1: rule 1 "-o te-eth0 -j SNAT --to-source 172.16.0.2" is missing',
    ]);
  });

  it("orders traffic control: roots before classes, parents before children, deletions first", () => {
    const tc = (minor: number, parent: string) => ({
      dev: "eth0",
      classid: `7e:${minor}`,
      parent,
      rate: 1e6,
      ceil: 1e6,
      burst: 1600,
      cburst: 1600,
      quantum: 1514,
    });
    const want = stateOf({
      qdiscs: [{ dev: "eth0", parent: "root", handle: "7e:", kind: "htb", defaultClass: 2 }],
      classes: [tc(2, "7e:1"), tc(1, "7e:")],
    });
    const b = renderBatches(diff(want, emptyState(), { tcRoot: () => true, tcClass: () => true }));
    expect(b.tc!.split("\n").map((l) => l.split(" classid ")[1]?.split(" ")[0] ?? l.split(" ")[0])).toEqual([
      "qdisc",
      "7e:1",
      "7e:2",
      "",
    ]);
    const gone = renderBatches(diff(emptyState(), { ...want, qdiscs: [] }, { tcClass: () => true }));
    expect(gone.tc).toBe("class del dev eth0 classid 7e:2\nclass del dev eth0 classid 7e:1\n");
  });

  it("within() keeps only the scoped part of an observation", () => {
    const observed: NetState = { ...desired, rules: [...desired.rules, ...foreign.rules], chains: [...foreign.chains] };
    expect(within(observed, scope).rules).toEqual(desired.rules);
    expect(within(observed, scope).chains).toEqual([]);
  });

  it("emptyState() is a new state each time: filling one leaves the next empty", () => {
    emptyState().rules.push(desired.rules[0]!);
    expect(emptyState().rules).toEqual([]);
  });
});
