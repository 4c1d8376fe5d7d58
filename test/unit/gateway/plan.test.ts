import { endianness } from "node:os";
import { describe, expect, it } from "vitest";
import { parseGatewayConfig } from "../../../src/gateway/config.js";
import {
  CONNTRACK_CHAIN,
  gatewayScope,
  learnedPods,
  markedIPv4,
  NFT_TABLE,
  planGateway,
  planGateway6,
  tenantScope,
} from "../../../src/gateway/plan.js";
import { htbClass, leafQdisc } from "../../../src/gateway/shaping.js";
import type { Neighbour } from "../../../src/net/desired-state.js";
import { diff, emptyState, problems } from "../../../src/net/desired-state.js";
import { parseConntrackSources, parseConntrackSources6, parseFdb } from "../../../src/net/observe.js";
import { parseClasses, parseQdiscs } from "../../../src/net/tc.js";
import { vniMatch } from "../../../src/net/vxlan.js";

const config = parseGatewayConfig({
  linkRate: "100mbit",
  tenants: [
    {
      name: "red",
      vni: 300,
      overlaySubnet: "172.30.0.0/24",
      allowedSources: ["10.22.0.0/24"],
      snat: "198.51.100.2",
      upload: { rate: "10mbit", ceil: "20mbit" },
      download: { rate: "10mbit" },
    },
  ],
});
// Two pods of red learned from their traffic, one MAC that is no derived MAC of red's overlay,
// and an entry of a device that is no tenant's tunnel.
const fdb = [
  { dev: "tev300", mac: "02:7e:ac:1e:00:05", dst: "10.22.0.5" },
  { dev: "tev300", mac: "02:7e:ac:1e:00:09", dst: "10.22.0.9" },
  { dev: "tev300", mac: "52:54:00:12:34:56", dst: "10.22.0.7" },
  { dev: "tev999", mac: "02:7e:ac:1e:00:06", dst: "10.22.0.6" },
];
const facts = {
  uplink: "eth0",
  uplinkIP: "10.23.0.2",
  uplinkMtu: 1500,
  leaf: "tbf" as const,
  fdb,
  tracked: [] as string[],
  ndp: [] as Neighbour[],
};

describe("planGateway", () => {
  const s = planGateway(config, facts);

  it("makes one tunnel per tenant that learns pods and keeps them", () => {
    expect(s.links).toEqual([
      expect.objectContaining({
        name: "tev300",
        vni: 300,
        local: "10.23.0.2",
        dev: "eth0",
        mtu: 1450,
        learning: true,
        alias: "tenant-egress:red",
        mac: "02:7e:ac:1e:00:01",
      }),
    ]);
    expect(s.links[0]!.ageing).toBeGreaterThan(86400);
  });

  it("keeps one permanent neighbour per learned pod, with the MAC derived from its overlay address", () => {
    expect(s.neighbours).toEqual([
      { dev: "tev300", ip: "172.30.0.5", mac: "02:7e:ac:1e:00:05" },
      { dev: "tev300", ip: "172.30.0.9", mac: "02:7e:ac:1e:00:09" },
    ]);
  });

  it("pins a learned pod's IPv6 twin: the entry its neighbour discovery left, same MAC, inside the tenant's IPv6 overlay", () => {
    const ndp = [
      { dev: "tev300", ip: "fd00:12c:7e7e::5", mac: "02:7e:ac:1e:00:05" }, // pod .5's overlay IPv6
      { dev: "tev300", ip: "fd00:12c:7e7e::77", mac: "02:7e:ac:1e:00:77" }, // a MAC no learned pod has
      { dev: "tev300", ip: "fd00:12d::9", mac: "02:7e:ac:1e:00:09" }, // outside the tenant's IPv6 overlay
      { dev: "tev300", ip: "fd00:12c:7e7e::1", mac: "02:7e:ac:1e:00:09" }, // the gateway's own overlay IPv6
      { dev: "tev999", ip: "fd00:12c:7e7e::9", mac: "02:7e:ac:1e:00:09" }, // no tenant's tunnel
    ];
    expect(planGateway(config, { ...facts, ndp }).neighbours).toEqual([
      { dev: "tev300", ip: "172.30.0.5", mac: "02:7e:ac:1e:00:05" },
      { dev: "tev300", ip: "fd00:12c:7e7e::5", mac: "02:7e:ac:1e:00:05" },
      { dev: "tev300", ip: "172.30.0.9", mac: "02:7e:ac:1e:00:09" },
    ]);
  });

  it("keeps the neighbours of pods with tracked connections too (a rebuilt tunnel's FDB starts empty)", () => {
    const tracked = ["172.30.0.9", "172.30.0.20", "203.0.113.10", "172.30.0.1", "10.22.0.5"];
    expect(planGateway(config, { ...facts, fdb: [], tracked }).neighbours).toEqual([
      { dev: "tev300", ip: "172.30.0.9", mac: "02:7e:ac:1e:00:09" },
      { dev: "tev300", ip: "172.30.0.20", mac: "02:7e:ac:1e:00:14" },
    ]);
    expect(planGateway(config, { ...facts, tracked }).neighbours).toHaveLength(3);
  });

  it("brings back a pod's IPv6 entry from conntrack's marks (a rebuilt tunnel has no neighbour discovery to go by)", () => {
    // The marks as the pairing chain leaves them on this host: the MAC's last four bytes in memory order.
    const mark = (ipv4: string) => {
      const b = Buffer.from(ipv4.split(".").map(Number));
      return endianness() === "LE" ? b.readUInt32LE() : b.readUInt32BE();
    };
    const tracked6 = [
      { ip: "fd00:12c:7e7e::5", mark: mark("172.30.0.5") },
      { ip: "fd00:12c:7e7e::5", mark: 0 }, // opened before the chain was there
      { ip: "fd00:12c:7e7e::8", mark: mark("172.30.0.8") },
      { ip: "fd00:12c:7e7e::8", mark: mark("172.30.0.18") }, // two MACs claim it: no pairing to trust
      { ip: "fd00:12c:7e7e::9", mark: mark("10.0.0.9") }, // a MAC outside the tenant's overlay
      { ip: "fd00:12d::9", mark: mark("172.30.0.9") }, // outside the tenant's IPv6 overlay
      { ip: "fd00:12c:7e7e::6", mark: 0 },
    ];
    expect(planGateway(config, { ...facts, fdb: [], tracked6 }).neighbours).toEqual([
      { dev: "tev300", ip: "fd00:12c:7e7e::5", mac: "02:7e:ac:1e:00:05" },
    ]);
    // What neighbour discovery says now wins over what a connection recorded when it opened.
    const ndp = [{ dev: "tev300", ip: "fd00:12c:7e7e::5", mac: "02:7e:ac:1e:00:09" }];
    expect(planGateway(config, { ...facts, ndp, tracked6 }).neighbours).toContainEqual(ndp[0]);
    expect(planGateway(config, { ...facts, ndp, tracked6 }).neighbours).toHaveLength(3);
  });

  it("marks each new IPv6 connection from a tunnel with its source MAC, in a chain only the gateway scope owns", () => {
    expect(s.nftChains).toEqual([
      expect.objectContaining({
        family: "ip6",
        table: NFT_TABLE,
        hook: "prerouting",
        priority: -150,
        rules: ['iifname "tev*" ct state new ct mark set @ll,64,32'],
      }),
    ]);
    expect(gatewayScope("eth0").nftChain?.(NFT_TABLE, s.nftChains[0]!.name)).toBe(true);
    expect(tenantScope("eth0", 300, 0x13b).nftChain?.(NFT_TABLE, s.nftChains[0]!.name)).toBeFalsy();
    expect(markedIPv4(0x050010ac, "LE")).toBe("172.16.0.5");
    expect(markedIPv4(0xac100005, "BE")).toBe("172.16.0.5");
  });

  it("reads tracked IPv6 connections' original sources and marks from conntrack's listing", () => {
    const text = [
      "tcp      6 431999 ESTABLISHED src=fd00:12c:7e7e::5 dst=2001:db8:113::10 sport=41222 dport=5201 src=2001:db8:113::10 dst=2001:db8:23::2 sport=5201 dport=41222 [ASSURED] mark=83890348 use=1",
      "tcp      6 431999 ESTABLISHED src=fd00:12c:7e7e::5 dst=2001:db8:113::10 sport=41224 dport=5201 src=2001:db8:113::10 dst=2001:db8:23::2 sport=5201 dport=41224 [ASSURED] mark=83890348 use=1",
      "icmpv6   58 29 src=fd00:12c:7e7e::9 dst=2001:db8:113::10 type=128 code=0 id=7 src=2001:db8:113::10 dst=2001:db8:23::2 type=129 code=0 id=7 mark=0 use=1",
      "",
    ].join("\n");
    expect(parseConntrackSources6(text)).toEqual([
      { ip: "fd00:12c:7e7e::5", mark: 83890348 },
      { ip: "fd00:12c:7e7e::9", mark: 0 },
    ]);
  });

  it("reads tracked connections' original sources from conntrack's listing", () => {
    const text = [
      "tcp      6 431999 ESTABLISHED src=172.30.0.9 dst=203.0.113.10 sport=41222 dport=5201 src=203.0.113.10 dst=10.23.0.2 sport=5201 dport=41222 [ASSURED] mark=0 use=1",
      "udp      17 29 src=172.30.0.9 dst=203.0.113.10 sport=53 dport=53 [UNREPLIED] src=203.0.113.10 dst=10.23.0.2 sport=53 dport=53 mark=0 use=1",
      "icmp     1 29 src=172.30.0.20 dst=203.0.113.10 type=8 code=0 id=7 src=203.0.113.10 dst=10.23.0.2 type=0 code=0 id=7 mark=0 use=1",
      "",
    ].join("\n");
    expect(parseConntrackSources(text)).toEqual(["172.30.0.9", "172.30.0.20"]);
  });

  it("holds no neighbour state without learned pods, however large the subnet", () => {
    const big = parseGatewayConfig({
      tenants: [
        {
          name: "big",
          vni: 7,
          overlaySubnet: "10.200.0.0/16",
          allowedSources: ["10.22.0.0/24"],
          upload: { rate: "1mbit" },
          download: { rate: "1mbit" },
        },
      ],
    });
    expect(planGateway(big, { ...facts, fdb: [] }).neighbours).toEqual([]);
  });

  it("reports learned MACs that break the contract (no derived MAC of the tenant's overlay), naming VTEP and MAC", () => {
    const { pods, strangers } = learnedPods(config, [
      ...fdb,
      { dev: "tev300", mac: "02:7e:ac:1f:00:05", dst: "10.22.0.8" }, // another overlay's address
      { dev: "tev300", mac: "02:7e:ac:1e:00:01", dst: "10.22.0.8" }, // the gateway's own address
      { dev: "tev300", mac: "02:7e:ac:1e:00:ff", dst: "10.22.0.8" }, // the subnet's broadcast
    ]);
    expect(pods.map((p) => `${p.ip}@${p.vtep}`)).toEqual(["172.30.0.5@10.22.0.5", "172.30.0.9@10.22.0.9"]);
    expect(strangers).toEqual([
      { tenant: "red", dev: "tev300", mac: "52:54:00:12:34:56", vtep: "10.22.0.7" },
      { tenant: "red", dev: "tev300", mac: "02:7e:ac:1f:00:05", vtep: "10.22.0.8" },
      { tenant: "red", dev: "tev300", mac: "02:7e:ac:1e:00:01", vtep: "10.22.0.8" },
      { tenant: "red", dev: "tev300", mac: "02:7e:ac:1e:00:ff", vtep: "10.22.0.8" },
    ]);
  });

  it("removes the neighbour of a pod whose FDB entry went, naming it", () => {
    const now = planGateway(config, { ...facts, fdb: fdb.slice(1) });
    const changes = diff(now, s, gatewayScope("eth0"));
    expect(changes).toEqual([
      { kind: "neighbours", op: "delete", object: { dev: "tev300", ip: "172.30.0.5", mac: "02:7e:ac:1e:00:05" } },
    ]);
    expect(problems(changes)).toEqual(["1 permanent neighbour entry left over: 172.30.0.5 on tev300"]);
    expect(problems(diff(s, { ...s, neighbours: [] }, gatewayScope("eth0")))).toEqual([
      "2 permanent neighbour entries missing or wrong: 172.30.0.5 on tev300, 172.30.0.9 on tev300",
    ]);
    expect(diff(emptyState(), emptyState(), gatewayScope("eth0"))).toEqual([]);
  });

  it("reads learned FDB entries from bridge's JSON, only for the devices asked, without the default destination", () => {
    const json = JSON.stringify([
      { mac: "02:7e:ac:1e:00:05", ifname: "tev300", dst: "10.22.0.5", flags: ["self"], state: "" },
      { mac: "00:00:00:00:00:00", ifname: "tev300", dst: "10.22.0.1", flags: ["self"], state: "permanent" },
      { mac: "33:33:00:00:00:01", ifname: "br0", flags: ["self"], state: "permanent" },
      { mac: "02:7E:AC:1E:00:06", ifname: "tev300", dst: "10.22.0.6", flags: ["self"], state: "" },
    ]);
    expect(parseFdb(json, ["tev300"])).toEqual([
      { dev: "tev300", mac: "02:7e:ac:1e:00:05", dst: "10.22.0.5" },
      { dev: "tev300", mac: "02:7e:ac:1e:00:06", dst: "10.22.0.6" },
    ]);
    expect(parseFdb("", ["tev300"])).toEqual([]);
  });

  it("accepts the tenant's VNI only from its allowed sources and SNATs to its address", () => {
    expect(s.jumps).toContainEqual(
      expect.objectContaining({
        hook: "INPUT",
        match: `-p udp -m udp --dport 4789 ${vniMatch(300)}`,
        chain: "TEG-IN-300",
      }),
    );
    expect(vniMatch(300)).toBe('-m u32 --u32 "0x0>>0x16&0x3c@0xc>>0x8=0x12c"');
    expect(s.chains.find((c) => c.name === "TEG-IN-300")!.rules).toEqual(["-s 10.22.0.0/24 -j RETURN", "-j DROP"]);
    expect(s.chains.find((c) => c.name === "TEG-SNAT-300")!.rules).toEqual([
      "-s 172.30.0.0/24 -o eth0 -j SNAT --to-source 198.51.100.2",
    ]);
  });

  it("shapes upload on the uplink and download on the tunnel, with a real default class", () => {
    const classes = s.classes.map((c) => `${c.dev} ${c.classid} ${c.parent} ${c.rate}/${c.ceil}`);
    expect(classes).toEqual(
      expect.arrayContaining([
        "eth0 7e:1 7e: 100000000/100000000",
        "eth0 7e:2 7e:1 1000000/100000000",
        "eth0 7e:3 7e:1 10000000/100000000",
        "eth0 7e:13b 7e:1 10000000/20000000",
        "tev300 7e:13b 7e: 10000000/10000000",
      ]),
    );
    expect(s.qdiscs.filter((q) => q.parent === "root")).toEqual([
      { dev: "tev300", parent: "root", handle: "7e:", kind: "htb", defaultClass: 0x13b },
      { dev: "eth0", parent: "root", handle: "7e:", kind: "htb", defaultClass: 2 },
    ]);
    expect(s.chains.find((c) => c.name === "TEG-CLS-300")!.rules).toEqual([
      "-i tev300 -o eth0 -j CLASSIFY --set-class 007e:013b",
    ]);
  });

  it("keeps connection tracking on with a chain no gateway scope owns, dropping INVALID replies", () => {
    expect(s.chains.find((c) => c.name === CONNTRACK_CHAIN)!.rules).toEqual([
      "-i eth0 -m conntrack --ctstate INVALID -j DROP",
    ]);
    expect(s.jumps).toContainEqual({ table: "filter", hook: "INPUT", match: "", chain: CONNTRACK_CHAIN, first: true });
    expect(gatewayScope("eth0").chain!("filter", CONNTRACK_CHAIN)).toBe(false);
    expect(tenantScope("eth0", 300, 0x13b).chain!("filter", CONNTRACK_CHAIN)).toBe(false);
  });

  it("owns nothing when it serves no tenant", () => {
    expect(planGateway(parseGatewayConfig({ tenants: [] }), facts)).toMatchObject({
      links: [],
      qdiscs: [],
      chains: [],
      sysctls: [],
    });
  });
});

describe("shaping", () => {
  it("sizes bursts to ~1 ms and at least a frame, quantum to ~10 ms, within HTB's range", () => {
    expect(htbClass("d", "7e:10", "7e:1", 10e6, 20e6)).toMatchObject({ burst: 1600, cburst: 2500, quantum: 12500 });
    expect(htbClass("d", "7e:10", "7e:1", 1e9, 1e9)).toMatchObject({ burst: 125000, cburst: 125000, quantum: 200000 });
    expect(htbClass("d", "7e:10", "7e:1", 500e3, 500e3)).toMatchObject({ burst: 1600, quantum: 1514 });
  });

  it("bounds a tbf leaf's queue to ~12 ms of the class rate and segments GSO (bucket < 64 KB)", () => {
    const leaf = leafQdisc("tbf", htbClass("d", "7e:10", "7e:1", 10e6, 10e6));
    expect(leaf).toMatchObject({
      kind: "tbf",
      handle: "10:",
      parent: "7e:10",
      rate: 12_500_000,
      burst: 3028,
      limit: 15000,
    });
    expect(leafQdisc("tbf", htbClass("d", "7e:10", "7e:1", 1e9, 1e9)).limit).toBe(1_500_000);
    expect(leafQdisc("fq_codel", htbClass("d", "7e:10", "7e:1", 1e9, 1e9))).toEqual({
      dev: "d",
      parent: "7e:10",
      handle: "10:",
      kind: "fq_codel",
    });
  });
});

describe("tc parsing", () => {
  it("reads HTB classes and counters from tc's text output", () => {
    const text = `class htb 7e:1 root rate 100Mbit ceil 100Mbit linklayer ethernet burst 12500b/1 mpu 0b cburst 12500b/1 mpu 0b level 7
 Sent 90 bytes 1 pkt (dropped 0, overlimits 0 requeues 0)
 backlog 0b 0p requeues 0
class htb 7e:13b parent 7e:1 leaf 13b: prio 0 quantum 12500 rate 3333Kbit ceil 10Mbit linklayer ethernet burst 1599b/1 mpu 0b cburst 1600b/1 mpu 0b level 0
 Sent 123456 bytes 100 pkt (dropped 7, overlimits 30 requeues 0)
 backlog 3028b 2p requeues 0
`;
    const [root, leaf] = parseClasses("eth0", text);
    expect(root!.cls).toEqual({
      dev: "eth0",
      classid: "7e:1",
      parent: "7e:",
      rate: 100e6,
      ceil: 100e6,
      burst: 12500,
      cburst: 12500,
      quantum: 0,
    });
    expect(leaf!.cls).toMatchObject({ parent: "7e:1", rate: 3333000, quantum: 12500, burst: 1599 });
    expect(leaf!.stats).toEqual({
      classid: "7e:13b",
      bytes: 123456,
      packets: 100,
      drops: 7,
      overlimits: 30,
      backlogBytes: 3028,
      backlogPackets: 2,
    });
  });

  it("reads qdiscs from tc's JSON, keeping only the kinds we manage", () => {
    const json = JSON.stringify([
      { kind: "htb", handle: "7e:", dev: "eth0", root: true, options: { default: "0x2", direct_packets_stat: 0 } },
      { kind: "tbf", handle: "2:", dev: "eth0", parent: "7e:2", options: { rate: 125000000, burst: "3000b/1" } },
      { kind: "noqueue", handle: "0:", dev: "lo", root: true },
    ]);
    expect(parseQdiscs(json)).toEqual([
      { dev: "eth0", parent: "root", handle: "7e:", kind: "htb", defaultClass: 2, directPackets: 0 },
      { dev: "eth0", parent: "7e:2", handle: "2:", kind: "tbf", rate: 125000000, burst: 3000 },
    ]);
  });
});

describe("planGateway6", () => {
  const s6 = planGateway6(config, facts);

  it("forwards IPv6 and puts the tenant's overlay IPv6 on its tunnel", () => {
    expect(s6.sysctls).toEqual([{ dev: "all", name: "forwarding", value: 1 }]);
    expect(s6.addresses).toEqual([{ dev: "tev300", local: "fd00:12c:7e7e::1", prefix: 48 }]);
  });

  it("twins the IPv4 forwarding, NAT and classification in ip6tables: both families in the one upload class", () => {
    const v4 = planGateway(config, facts);
    const byName = (chains: { name: string; rules: string[] }[], name: string) =>
      chains.find((c) => c.name === name)!.rules;
    expect(byName(s6.chains, "TEG-FWD-300")).toEqual(
      byName(v4.chains, "TEG-FWD-300").map((r) => r.replace("172.30.0.0/24", "fd00:12c:7e7e::/48")),
    );
    expect(byName(s6.chains, "TEG-SNAT-300")).toEqual(["-s fd00:12c:7e7e::/48 -o eth0 -j MASQUERADE"]);
    expect(byName(s6.chains, "TEG-CLS-300")).toEqual(byName(v4.chains, "TEG-CLS-300"));
    expect(byName(s6.chains, CONNTRACK_CHAIN)).toEqual(byName(v4.chains, CONNTRACK_CHAIN));
    expect(s6.jumps.map((j) => `${j.table} ${j.hook} ${j.chain}`)).toEqual([
      `filter INPUT ${CONNTRACK_CHAIN}`,
      "filter FORWARD TEG-FWD-300",
      "nat POSTROUTING TEG-SNAT-300",
      "mangle FORWARD TEG-CLS-300",
    ]);
  });

  it("SNATs to a configured egress IPv6, and owns nothing without tenants", () => {
    const fixed = parseGatewayConfig({
      tenants: [
        {
          name: "red",
          vni: 300,
          overlaySubnet: "172.30.0.0/24",
          allowedSources: ["10.22.0.0/24"],
          snat6: "2001:db8:100::7",
          upload: { rate: "1mbit" },
          download: { rate: "1mbit" },
        },
      ],
    });
    expect(planGateway6(fixed, facts).chains.find((c) => c.name === "TEG-SNAT-300")!.rules).toEqual([
      "-s fd00:12c:7e7e::/48 -o eth0 -j SNAT --to-source 2001:db8:100::7",
    ]);
    expect(planGateway6(parseGatewayConfig({ tenants: [] }), facts)).toEqual({
      sysctls: [],
      addresses: [],
      nftChains: [],
      chains: [],
      jumps: [],
    });
  });
});
