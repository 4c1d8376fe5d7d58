/**
 * The lab: a small routed network of namespaces on one machine (DESIGN.md §5), never touching
 * the root namespace. Every link is created inside a lab namespace (`ip -n`), so even a crash
 * half-way leaves nothing outside them, and deleting the namespaces removes everything.
 *
 *   pods ─ node-a (bridge cni0, where the CNI plugins run) ─┐
 *                                                           ├─ router ─ inet (203.0.113.10, 2001:db8:113::10)
 *   gateway pods ─ node-b ──────────────────────────────────┘
 *
 * node-a's pod network is 10.22.0.0/24 (bridge + host-local, driven by cnitool), gateways sit
 * on node-b's 10.23.0.0/24, so pods and gateways are routed, never on-link. No node masquerades:
 * the internet host sees exactly the source address that left the lab's edge. The lab is
 * dual-stack: node-a's pod networks have unique local IPv6 ranges (a conflist opts in with a
 * second host-local range), the gateways have public (documentation-prefix) IPv6 uplinks on
 * node-b's 2001:db8:23::/64, and the "internet" host has an IPv6 address too; the underlay
 * between pods and gateways stays IPv4, as in the clusters this project serves. IPv4-only
 * networks never notice the IPv6.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../net/run.js";

export const INET_IP = "203.0.113.10";
export const INET6_IP = "2001:db8:113::10";
/** The IPv6 ranges of node-a's two pod networks (a conflist opts in with a second host-local range). */
export const POD6_SUBNET = "fd00:22::/64";
export const POD6_SUBNET_2 = "fd00:24::/64";
export const POD_SUBNET = "10.22.0.0/24";
/** A second pod network on node-a, for main plugins other than bridge (ptp). */
export const POD_SUBNET_2 = "10.24.0.0/24";
export const NODE_B_SUBNET = "10.23.0.0/24";
/** node-b's IPv6 segment: the gateways' public IPv6 uplinks. */
export const NODE_B6_SUBNET = "2001:db8:23::/64";
/** Routed to node-b like 198.51.100.0/24: egress IPv6 addresses a gateway SNATs to. */
export const EGRESS6_RANGE = "2001:db8:100::/48";

export interface Lab {
  prefix: string;
  ns: { router: string; inet: string; nodeA: string; nodeB: string };
  /** A scratch directory for conflists, IPAM state and captures; removed on teardown. */
  dir: string;
  /** Adds a gateway namespace on node-b with underlay address 10.23.0.<host> and uplink IPv6 2001:db8:23::<host>. */
  addGateway(name: string, host: number): Promise<{ ns: string; ip: string; ip6: string }>;
  /** Creates an empty pod namespace (the runtime's job; CNI plugins then wire it). */
  addPodNamespace(name: string): Promise<string>;
  teardown(): Promise<void>;
}

/** Runs a batch of `ip` commands in a lab namespace. */
export async function ipIn(ns: string, lines: string[]): Promise<void> {
  await run(["ip", "-n", ns, "-batch", "-"], { input: `${lines.join("\n")}\n` });
}

export async function sysctlIn(ns: string, ...settings: string[]): Promise<void> {
  await run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", ...settings]);
}

/** A namespace prefix unique to this run, short enough for 15-character interface names elsewhere. */
export function uniquePrefix(tag: string): string {
  return `te${tag}${randomBytes(3).toString("hex")}`;
}

async function addNs(name: string): Promise<void> {
  await run(["ip", "netns", "add", name]);
  await run(["ip", "-n", name, "link", "set", "lo", "up"]);
}

/** Namespaces whose names start with `prefix` (for teardown and `lab down`). */
export async function namespacesWithPrefix(prefix: string): Promise<string[]> {
  const r = await run(["ip", "-json", "netns", "list"], { allowFailure: true });
  const list = r.stdout.trim() ? (JSON.parse(r.stdout) as Array<{ name: string }>) : [];
  return list.map((n) => n.name).filter((n) => n.startsWith(prefix));
}

export async function deleteNamespaces(prefix: string): Promise<void> {
  for (const ns of await namespacesWithPrefix(prefix)) await run(["ip", "netns", "del", ns], { allowFailure: true });
}

export async function createLab(prefix: string): Promise<Lab> {
  const ns = {
    router: `${prefix}-router`,
    inet: `${prefix}-inet`,
    nodeA: `${prefix}-node-a`,
    nodeB: `${prefix}-node-b`,
  };
  const dir = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const teardown = async () => {
    await deleteNamespaces(`${prefix}-`);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const n of Object.values(ns)) await addNs(n);
    await ipIn(ns.router, [
      `link add to-a type veth peer name uplink netns ${ns.nodeA}`,
      `link add to-b type veth peer name uplink netns ${ns.nodeB}`,
      `link add to-inet type veth peer name eth0 netns ${ns.inet}`,
      "addr add 10.0.1.1/30 dev to-a",
      "addr add 10.0.2.1/30 dev to-b",
      "addr add 203.0.113.1/24 dev to-inet",
      "link set to-a up",
      "link set to-b up",
      "link set to-inet up",
      `route add ${POD_SUBNET} via 10.0.1.2`,
      `route add ${POD_SUBNET_2} via 10.0.1.2`,
      `route add ${NODE_B_SUBNET} via 10.0.2.2`,
      "route add 198.51.100.0/24 via 10.0.2.2",
      // nodad: the addresses are usable at once, not tentative for a second.
      "addr add fd00:1::1/64 dev to-a nodad",
      "addr add 2001:db8:113::1/64 dev to-inet nodad",
      `route add ${POD6_SUBNET} via fd00:1::2`,
      `route add ${POD6_SUBNET_2} via fd00:1::2`,
      "addr add fd00:2::1/64 dev to-b nodad",
      `route add ${NODE_B6_SUBNET} via fd00:2::2`,
      `route add ${EGRESS6_RANGE} via fd00:2::2`,
    ]);
    await ipIn(ns.nodeA, [
      "addr add 10.0.1.2/30 dev uplink",
      "addr add fd00:1::2/64 dev uplink nodad",
      "link set uplink up",
      "route add default via 10.0.1.1",
      "route add default via fd00:1::1",
    ]);
    await ipIn(ns.nodeB, [
      "addr add 10.0.2.2/30 dev uplink",
      "link set uplink up",
      "route add default via 10.0.2.1",
      "addr add fd00:2::2/64 dev uplink nodad",
      "route add default via fd00:2::1",
      "link add gwbr type bridge",
      `addr add 10.23.0.1/24 dev gwbr`,
      "addr add 2001:db8:23::1/64 dev gwbr nodad",
      "link set gwbr up",
    ]);
    await ipIn(ns.inet, [
      "addr add 203.0.113.10/24 dev eth0",
      "addr add 2001:db8:113::10/64 dev eth0 nodad",
      "link set eth0 up",
      "route add default via 203.0.113.1",
      "route add default via 2001:db8:113::1",
    ]);
    for (const n of [ns.router, ns.nodeA, ns.nodeB]) await sysctlIn(n, "net.ipv4.ip_forward=1");
    for (const n of [ns.router, ns.nodeA, ns.nodeB]) await sysctlIn(n, "net.ipv6.conf.all.forwarding=1");
  } catch (e) {
    await teardown();
    throw e;
  }

  let gwIndex = 0;
  return {
    prefix,
    ns,
    dir,
    async addGateway(name, host) {
      const gw = `${prefix}-${name}`;
      const peer = `gw${gwIndex++}`;
      await addNs(gw);
      await ipIn(ns.nodeB, [
        `link add ${peer} type veth peer name eth0 netns ${gw}`,
        `link set ${peer} master gwbr up`,
      ]);
      const ip = `10.23.0.${host}`;
      const ip6 = `2001:db8:23::${host.toString(16)}`;
      await ipIn(gw, [
        `addr add ${ip}/24 dev eth0`,
        `addr add ${ip6}/64 dev eth0 nodad`,
        "link set eth0 up",
        "route add default via 10.23.0.1",
        "route add default via 2001:db8:23::1",
      ]);
      return { ns: gw, ip, ip6 };
    },
    async addPodNamespace(name) {
      const pod = `${prefix}-${name}`;
      await addNs(pod);
      return pod;
    },
    teardown,
  };
}
