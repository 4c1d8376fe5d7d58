/**
 * Limits a privileged pod cannot escape. A tenant pod with CAP_NET_ADMIN tries every way out it
 * has — flushing its rules, other source addresses, another MAC, raw frames, IPv6, its own
 * tunnels — with bridge and with ptp as the main plugin. Each attempt runs twice: on a network
 * without enforcement it must escape (so the attempt is real), on one with enforcement nothing
 * of it may reach the internet host, counted there and on the node's uplink, while the pod's
 * private traffic (and, where the attempt left it alone, its tunnel) still works. And GC
 * removes exactly the enforcement of pods that are gone.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cni, type Network, writeBridgeConflist, writePtpConflist } from "../../src/lab/cni-client.js";
import { applyGateway } from "../../src/lab/gateway-cli.js";
import { runPlugin } from "../../src/lab/plugin-runner.js";
import type { Background } from "../../src/lab/process.js";
import { sendRawUdp } from "../../src/lab/raw-frames.js";
import { labTenant, pluginTenants } from "../../src/lab/tenants.js";
import {
  createLab,
  INET_IP,
  INET6_IP,
  ipIn,
  type Lab,
  POD_SUBNET,
  POD_SUBNET_2,
  POD6_SUBNET,
  POD6_SUBNET_2,
  uniquePrefix,
} from "../../src/lab/topology.js";
import { capture, ping, sourceSeenBy, startInetServers } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";

let lab: Lab;
let servers: Background;
let gw: { ns: string; ip: string; ip6: string };

// Both main networks' pods are the tenants' allowed sources.
const limits = { allowedSources: [POD_SUBNET, POD_SUBNET_2], upload: "50mbit", download: "50mbit" };
const TENANTS = [labTenant("red", 300, "172.30.0.0/24", limits), labTenant("blue", 400, "172.31.0.0/24", limits)];

type Variant = "open" | "enforced";
interface Main {
  main: "bridge" | "ptp";
  /** The first three octets of its IPv4 pod subnet. */
  net3: string;
  v6: string;
  nets: Record<Variant, Network>;
}
const MAINS: Main[] = [
  { main: "bridge", net3: "10.22.0", v6: POD6_SUBNET, nets: {} as never },
  { main: "ptp", net3: "10.24.0", v6: POD6_SUBNET_2, nets: {} as never },
];

beforeAll(async () => {
  lab = await createLab(uniquePrefix("x"));
  servers = await startInetServers(lab.ns.inet);
  gw = await lab.addGateway("gw", 2);
  await applyGateway(gw.ns, lab.dir, { tenants: TENANTS });
  for (const m of MAINS) {
    const write = m.main === "bridge" ? writeBridgeConflist : writePtpConflist;
    const v6 = m.v6.replace("::/64", "::");
    // Networks sharing a bridge (or the node's routes) must not hand out the same addresses.
    for (const [variant, from, to] of [
      ["enforced", 10, 99],
      ["open", 100, 199],
    ] as const) {
      m.nets[variant] = await write({
        name: `${lab.prefix}-${m.main}-${variant}`,
        dir: lab.dir,
        subnet: `${m.net3}.0/24`,
        range: { start: `${m.net3}.${from}`, end: `${m.net3}.${to}` },
        ipv6Subnet: m.v6,
        ipv6Range: { start: `${v6}${from}`, end: `${v6}${to}` },
        egress: { tenants: pluginTenants(gw.ip, TENANTS), ...(variant === "enforced" ? { enforce: true } : {}) },
      });
    }
  }
});

afterAll(async () => {
  await servers?.stop();
  await lab?.teardown();
});

interface Pod {
  ns: string;
  ip: string;
  /** Its default gateway (the node's side). */
  via: string;
}

let podCount = 0;
async function attach(net: Network, tenant: string | undefined): Promise<Pod> {
  const ns = await lab.addPodNamespace(`p${podCount++}`);
  const result = JSON.parse(
    await cni("add", {
      node: lab.ns.nodeA,
      network: net,
      pod: ns,
      ...(tenant ? { cniArgs: `IgnoreUnknown=1;EGRESS_TENANT=${tenant}` } : {}),
    }),
  ) as {
    ips: Array<{ address: string; gateway?: string }>;
  };
  const v4 = result.ips.find((i) => !i.address.includes(":"))!;
  return { ns, ip: v4.address.split("/")[0]!, via: v4.gateway! };
}

/** What a privileged pod can do to its own namespace: its tunnel is then out of the way. */
async function tearOwnRulesDown(ns: string): Promise<void> {
  for (const table of ["mangle", "nat"]) await run(["ip", "netns", "exec", ns, "iptables", "-w", "-t", table, "-F"]);
  await run(["ip", "-n", ns, "rule", "del", "pref", "1000"]);
}

/**
 * The same for IPv6 alone: steered like IPv4 (its own mark chain in ip6tables, an `ip -6 rule`
 * into the same table), so a pod that wants public IPv6 out untunnelled deletes those.
 */
async function tearOwnIPv6RulesDown(ns: string): Promise<void> {
  for (const table of ["mangle", "nat"]) await run(["ip", "netns", "exec", ns, "ip6tables", "-w", "-t", table, "-F"]);
  await run(["ip", "-6", "-n", ns, "rule", "del", "pref", "1000"]);
}

/** Sends from another source address: added to eth0 and made the default route's source. */
async function useSource(pod: Pod, source: string): Promise<void> {
  await ipIn(pod.ns, [
    `addr add ${source}/32 dev eth0`,
    `route replace default via ${pod.via} dev eth0 onlink src ${source}`,
  ]);
}

/** A tunnel of the pod's own making into the overlay at `remote` with `vni`, routing the internet host through it. */
async function ownTunnel(
  pod: Pod,
  vni: number,
  remote: string,
  overlay: { local: string; peer: string },
): Promise<void> {
  await ipIn(pod.ns, [
    `link add rogue type vxlan id ${vni} dstport 4789 local ${pod.ip} remote ${remote} dev eth0 nolearning`,
    "link set rogue address 02:7e:ac:1f:00:4d mtu 1450 up",
    `addr add ${overlay.local} peer ${overlay.peer} dev rogue`,
    `route add ${INET_IP}/32 via ${overlay.peer} dev rogue onlink`,
  ]);
  await run([
    "ip",
    "netns",
    "exec",
    pod.ns,
    "iptables",
    "-w",
    "-t",
    "nat",
    "-A",
    "POSTROUTING",
    "-o",
    "rogue",
    "-j",
    "SNAT",
    "--to-source",
    overlay.local,
  ]);
}

/** One TCP connection attempt to the echo server (the SYN and its retransmission are what count). */
const tcpProbe = (pod: Pod, host = INET_IP) => sourceSeenBy(pod.ns, host, 2).catch(() => "");

interface Attempt {
  name: string;
  setup(pod: Pod, m: Main): Promise<void>;
  probe(pod: Pod): Promise<unknown>;
  /** What of it the internet host and the node's uplink would see (pcap filters). */
  inet: string | (() => string);
  uplink: (pod: Pod) => string;
  /** With enforcement: does the pod's own traffic still work afterwards? */
  after: { privateWorks: boolean; tunnelWorks: boolean };
}

const TCP = `tcp dst port 8080 and dst host ${INET_IP}`;
const ATTEMPTS: Attempt[] = [
  {
    name: "flush its mangle and nat rules, delete its ip rule",
    setup: (pod) => tearOwnRulesDown(pod.ns),
    probe: (pod) => tcpProbe(pod),
    inet: TCP,
    uplink: () => TCP,
    after: { privateWorks: true, tunnelWorks: false },
  },
  {
    name: "send from an unassigned address of the pod subnet",
    setup: async (pod, m) => {
      await tearOwnRulesDown(pod.ns);
      await useSource(pod, `${m.net3}.230`);
    },
    probe: (pod) => tcpProbe(pod),
    inet: TCP,
    uplink: () => TCP,
    after: { privateWorks: true, tunnelWorks: false },
  },
  {
    name: "send from another (non-tenant) pod's address",
    setup: async (pod, m) => {
      const other = await attach(m.nets.open, undefined);
      await tearOwnRulesDown(pod.ns);
      await useSource(pod, other.ip);
    },
    probe: (pod) => tcpProbe(pod),
    inet: TCP,
    uplink: () => TCP,
    after: { privateWorks: true, tunnelWorks: false },
  },
  {
    name: "send from the gateway's underlay address",
    setup: async (pod) => {
      await tearOwnRulesDown(pod.ns);
      await useSource(pod, gw.ip);
    },
    probe: (pod) => tcpProbe(pod),
    inet: TCP,
    uplink: () => TCP,
    after: { privateWorks: true, tunnelWorks: false },
  },
  {
    name: "change its MAC",
    setup: async (pod) => {
      await tearOwnRulesDown(pod.ns);
      await ipIn(pod.ns, ["link set eth0 address 02:00:00:00:be:ef"]);
    },
    probe: (pod) => tcpProbe(pod),
    inet: TCP,
    uplink: () => TCP,
    // Its frames no longer come from the MAC the node pinned: nothing of it passes.
    after: { privateWorks: false, tunnelWorks: false },
  },
  {
    name: "flood raw UDP frames to a public address from a spoofed source",
    setup: async () => {},
    probe: async (pod) => {
      await ping(pod.ns, pod.via);
      const neigh = JSON.parse((await run(["ip", "-n", pod.ns, "-j", "neigh", "show", pod.via])).stdout) as Array<{
        lladdr: string;
      }>;
      await sendRawUdp(pod.ns, {
        dev: "eth0",
        dstMac: neigh[0]!.lladdr,
        src: pod.ip.replace(/\.\d+$/, ".231"),
        dst: INET_IP,
        dport: 9,
        count: 200,
      });
    },
    inet: "udp dst port 9",
    uplink: () => "udp dst port 9",
    after: { privateWorks: true, tunnelWorks: true },
  },
  {
    name: "delete its IPv6 steering, then IPv6 to a public address",
    setup: async (pod) => {
      // Steered first, with or without enforcement: what escapes below is what the deletion let out.
      expect(await sourceSeenBy(pod.ns, INET6_IP)).toBe(gw.ip6);
      await tearOwnIPv6RulesDown(pod.ns);
    },
    probe: (pod) => tcpProbe(pod, INET6_IP),
    // Untunnelled IPv6 only: the tunnelled kind reaches the internet host from the gateway's IPv6.
    inet: () => `ip6 and tcp dst port 8080 and not src host ${gw.ip6}`,
    uplink: () => `ip6 and tcp dst port 8080`,
    // Its IPv4 steering was left alone, and still works.
    after: { privateWorks: true, tunnelWorks: true },
  },
  {
    name: "another tenant's VNI through another tenant's gateway",
    setup: async (pod) => {
      await tearOwnRulesDown(pod.ns);
      await ownTunnel(pod, 400, gw.ip, { local: "172.31.0.77", peer: "172.31.0.1" });
    },
    probe: (pod) => tcpProbe(pod),
    inet: TCP,
    // Blue's VNI from the pod (VNI: bytes 4-6 of the VXLAN header); the pod's own tunnel is not the attempt.
    uplink: (pod) => `udp dst port 4789 and src host ${pod.ip} and (udp[12:4] >> 8) = 400`,
    after: { privateWorks: true, tunnelWorks: false },
  },
  {
    name: "VXLAN with its own VNI to a host that is not its gateway",
    setup: async (pod) => {
      await tearOwnRulesDown(pod.ns);
      // Its own VNI and port are taken by the plugin's device: out of the way with it too.
      await ipIn(pod.ns, ["link del te-eth0"]);
      await ownTunnel(pod, 300, INET_IP, { local: "172.30.0.77", peer: "172.30.0.1" });
    },
    probe: (pod) => tcpProbe(pod),
    inet: "udp dst port 4789",
    uplink: () => `udp dst port 4789 and dst host ${INET_IP}`,
    after: { privateWorks: true, tunnelWorks: false },
  },
];

/** Runs one attempt from a fresh red pod; returns what the internet host and the uplink saw of it. */
async function attempt(m: Main, variant: Variant, a: Attempt) {
  const pod = await attach(m.nets[variant], "red");
  expect(await sourceSeenBy(pod.ns)).toBe(gw.ip);
  await a.setup(pod, m);
  const [atInet, atUplink] = await Promise.all([
    capture(lab.ns.inet, "eth0", typeof a.inet === "string" ? a.inet : a.inet()),
    capture(lab.ns.nodeA, "uplink", a.uplink(pod)),
  ]);
  await a.probe(pod);
  const [inet, uplink] = await Promise.all([atInet.stop(), atUplink.stop()]);
  process.stdout.write(
    `escape [${m.main}, ${variant}] ${a.name}: internet host saw ${inet.length} packets, node uplink ${uplink.length}\n`,
  );
  return { pod, inet: inet.length, uplink: uplink.length };
}

/**
 * Detaches the attempt's pod (DEL must cope with whatever the pod did to itself) and removes
 * its namespace: what it still sends (neighbour retries of its own tunnels) must not be counted
 * in the next attempt.
 */
async function detach(m: Main, variant: Variant, pod: Pod): Promise<void> {
  await cni("del", {
    node: lab.ns.nodeA,
    network: m.nets[variant],
    pod: pod.ns,
    cniArgs: "IgnoreUnknown=1;EGRESS_TENANT=red",
  });
  await run(["ip", "netns", "del", pod.ns]);
}

describe.each(MAINS)("a privileged tenant pod behind $main", (m) => {
  describe.each(ATTEMPTS)("tries to: $name", (a) => {
    it("escapes when the node does not enforce", async () => {
      const seen = await attempt(m, "open", a);
      expect(seen.inet).toBeGreaterThan(0);
      expect(seen.uplink).toBeGreaterThan(0);
      await detach(m, "open", seen.pod);
    });

    it("is stopped by the node's enforcement, while its own traffic still works", async () => {
      const seen = await attempt(m, "enforced", a);
      expect({ inet: seen.inet, uplink: seen.uplink }).toEqual({ inet: 0, uplink: 0 });
      // Private traffic from its own address (node-b's uplink), and its tunnel if left alone.
      expect(
        await run(["ip", "netns", "exec", seen.pod.ns, "ping", "-c", "1", "-W", "2", "-I", seen.pod.ip, "10.0.2.2"], {
          allowFailure: true,
        }).then((r) => r.exitCode === 0),
      ).toBe(a.after.privateWorks);
      if (a.after.tunnelWorks) expect(await sourceSeenBy(seen.pod.ns)).toBe(gw.ip);
      await detach(m, "enforced", seen.pod);
    });
  });
});

describe("enforcement lifecycle", () => {
  const m = MAINS[0]!;
  // cnitool's container ID: "cnitool-" and the first 10 bytes of the netns path's SHA-512.
  const containerId = (pod: string) =>
    `cnitool-${createHash("sha512").update(`/run/netns/${pod}`).digest("hex").slice(0, 20)}`;
  const ruleset = async () =>
    (await run(["ip", "netns", "exec", lab.ns.nodeA, "nft", "list", "table", "netdev", "tenant-egress"])).stdout;
  const enforcementChains = async () => (await ruleset()).match(/^\s+chain te-\S+/gm) ?? [];

  it("CHECK covers it and names what is missing, DEL removes it, and GC removes only the chains of pods that are gone", async () => {
    const net = m.nets.enforced;
    const before = await enforcementChains();
    const kept = await attach(net, "red");
    const lost = await attach(net, "red");
    const other = await attach(MAINS[1]!.nets.enforced, "red");
    expect((await enforcementChains()).length).toBe(before.length + 3);
    const call = { node: lab.ns.nodeA, network: net, pod: kept.ns, cniArgs: "IgnoreUnknown=1;EGRESS_TENANT=red" };
    await cni("check", call);

    // Someone on the node removes the chain: CHECK names it.
    const chain = (await ruleset()).match(
      new RegExp(
        `^\\s+chain (te-\\S+) \\{\\n\\s+comment "tenant-egress:${net.name}:${containerId(kept.ns)}/eth0"`,
        "m",
      ),
    )![1]!;
    await run(["ip", "netns", "exec", lab.ns.nodeA, "nft", "delete", "chain", "netdev", "tenant-egress", chain]);
    await expect(cni("check", call)).rejects.toThrow(
      new RegExp(`on the node: nftables chain ${chain} \\(netdev tenant-egress\\) is missing`),
    );

    // A pod whose DEL never ran: its namespace is simply gone.
    await run(["ip", "netns", "del", lost.ns]);
    const owners = (await ruleset()).match(/comment "tenant-egress:[^"]+"/g)!.map((c) => c.slice(9, -1));
    const valid = owners
      .filter((o) => o.startsWith(`tenant-egress:${net.name}:`) && !o.includes(containerId(lost.ns)))
      .map((o) => ({ containerID: o.split(":")[2]!.split("/")[0]!, ifname: "eth0" }));
    valid.push({ containerID: containerId(kept.ns), ifname: "eth0" });
    const countBefore = (await enforcementChains()).length;
    const gc = await runPlugin(lab.ns.nodeA, "", "GC", {
      cniVersion: "1.1.0",
      name: net.name,
      type: "tenant-egress",
      enforce: true,
      "cni.dev/valid-attachments": valid,
    });
    expect(gc).toMatchObject({ exitCode: 0, stdout: "" });
    // Only the lost pod's chain went: another network's chain stayed.
    expect((await enforcementChains()).length).toBe(countBefore - 1);
    expect(await ruleset()).not.toContain(containerId(lost.ns));
    expect(await ruleset()).toContain(`tenant-egress:${MAINS[1]!.nets.enforced.name}:`);
    await detach(MAINS[1]!, "enforced", other);

    await cni("del", call);
    expect(await ruleset()).not.toContain(containerId(kept.ns));
  });
});
