/**
 * The lab of a gateway pair (README "High availability"): two gateway namespaces on node-b's
 * segment, joined by a dedicated sync link, both running `tenant-egress-gateway run` from the
 * same file; pods on node-a attached through the real chain (cnitool), their tunnels pointed at
 * the pair's shared address; the internet host behind the router. Failures are made the way
 * they look from outside: a node failure kills every process in the instance's namespace
 * (SIGKILL, by PID) and takes its links down; a restore starts the daemon again and then brings
 * the links up, as a booting node would; a keepalived failure kills only keepalived. Partitions
 * are made on the paths between the two: VRRP is dropped in node-b's bridge (as a switch fault
 * or a firewall between them would) while everything else still flows; the sync link loses every
 * packet at one end, its links staying up.
 */
import { rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa, type ResultPromise } from "execa";
import { haDir } from "../gateway/ha/controller.js";
import { run } from "../net/run.js";
import { cni, type Network, writeBridgeConflist } from "./cni-client.js";
import { type DaemonProcess, startGatewayDaemon } from "./gateway-cli.js";
import type { Background } from "./process.js";
import { labTenant, pluginTenants } from "./tenants.js";
import { createLab, ipIn, type Lab } from "./topology.js";
import { execIn, startInetServers } from "./traffic.js";

export const VIP = "10.23.0.100";
export const SYNC_IF = "sync0";

export interface HaTenant {
  name: string;
  vni: number;
  overlaySubnet: string;
  egress: string;
  upload: string;
  download: string;
}

/** The tenant as the lab's one tenant builder describes it (the egress address is HA's own: an explicit SNAT). */
const labTenantOf = (t: HaTenant) =>
  labTenant(t.name, t.vni, t.overlaySubnet, { upload: t.upload, download: t.download });

export const HA_TENANTS: HaTenant[] = [
  {
    name: "acme",
    vni: 100,
    overlaySubnet: "172.16.0.0/24",
    egress: "198.51.100.1",
    upload: "20mbit",
    download: "40mbit",
  },
  {
    name: "globex",
    vni: 200,
    overlaySubnet: "172.17.0.0/24",
    egress: "198.51.100.2",
    upload: "5mbit",
    download: "10mbit",
  },
  // Carries no bulk flow in the tests: its new connections measure the failover alone, where a
  // saturated tenant's own queue drops some SYNs by design.
  {
    name: "initech",
    vni: 300,
    overlaySubnet: "172.19.0.0/24",
    egress: "198.51.100.3",
    upload: "5mbit",
    download: "5mbit",
  },
];

export interface Instance {
  name: string;
  ns: string;
  ip: string;
  syncIP: string;
  daemon?: DaemonProcess;
}

export interface HaScene {
  lab: Lab;
  instances: [Instance, Instance];
  pods: Array<{ tenant: string; ns: string; ip: string }>;
  servers: Background;
  file: string;
  /** Writes `tenants` into the pair's file (both instances watch it) and the pods' conflist. */
  setTenants(tenants: readonly HaTenant[]): Promise<void>;
  /** A pod of `t` on node-a through the real chain (its tenant must be in the conflist). */
  addPod(t: HaTenant): Promise<{ tenant: string; ns: string; ip: string }>;
  /** Starts (or restarts) an instance's daemon and waits for its first reconcile. */
  start(i: Instance): Promise<void>;
  /** The instance holding the shared address, once exactly one does (undefined if none or both). */
  holders(): Promise<Instance[]>;
  /** Node failure: its links down, every process in its namespace SIGKILLed; resolves with when the links went down. */
  killNode(i: Instance): Promise<number>;
  /** Boots it again: daemon first, links second; resolves with when the links came up. */
  restore(i: Instance): Promise<number>;
  /** Only keepalived dies (SIGKILL), the rest of the instance stays up; resolves with the PIDs killed and when. */
  killKeepalived(i: Instance): Promise<{ pids: number[]; at: number }>;
  /** Cuts (or heals) VRRP between the two on the segment; everything else still flows. */
  cutVrrp(cut: boolean): Promise<void>;
  /** Cuts (or heals) the sync link: every packet on it is lost, both ways, its links stay up. */
  cutSync(cut: boolean): Promise<void>;
  teardown(): Promise<void>;
}

export function haGatewayConfig(
  instances: Instance[],
  advertInterval = "100ms",
  tenants: readonly HaTenant[] = HA_TENANTS,
) {
  return {
    uplink: "eth0",
    linkRate: "1gbit",
    ha: {
      vip: `${VIP}/24`,
      virtualRouterId: 51,
      advertInterval,
      syncInterface: SYNC_IF,
      instances: instances.map((i, n) => ({
        name: i.name,
        address: i.ip,
        syncAddress: i.syncIP,
        priority: n === 0 ? 150 : 100,
      })),
    },
    tenants: tenants.map((t) => ({ ...labTenantOf(t), snat: t.egress })),
  };
}

async function pidsIn(ns: string): Promise<number[]> {
  const r = await run(["ip", "netns", "pids", ns], { allowFailure: true });
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((p) => p !== process.pid);
}

/**
 * A cut made with an nftables table of its own (the kernel has neither netem nor tc's actions),
 * named so that nothing of the gateway's meets it; removing the table heals it.
 */
async function nft(
  ns: string,
  cut: boolean,
  family: "bridge" | "inet",
  hook: "forward" | "input" | "output",
  rules: string[],
) {
  const table = `lab_cut_${hook}`;
  const script = cut
    ? [
        `add table ${family} ${table}`,
        `add chain ${family} ${table} c { type filter hook ${hook} priority 0; }`,
        ...rules.map((r) => `add rule ${family} ${table} c ${r}`),
      ]
    : [`delete table ${family} ${table}`];
  await run(["ip", "netns", "exec", ns, "nft", "-f", "-"], { input: `${script.join("\n")}\n` });
}

async function comm(pid: number): Promise<string> {
  const r = await run(["cat", `/proc/${pid}/comm`], { allowFailure: true });
  return r.stdout.trim();
}

export async function buildHaScene(prefix: string): Promise<HaScene> {
  const lab = await createLab(prefix);
  let servers: Background | undefined;
  const instances: Instance[] = [];
  const teardown = async () => {
    for (const i of instances) await i.daemon?.stop();
    await servers?.stop();
    await lab.teardown();
    // A killed instance's daemon could not remove its directory.
    for (const i of instances) await rm(haDir(i.name), { recursive: true, force: true });
  };
  try {
    servers = await startInetServers(lab.ns.inet);
    for (const [n, host] of [
      ["a", 2],
      ["b", 3],
    ] as const) {
      const g = await lab.addGateway(`gw${n}`, host);
      instances.push({
        name: `${prefix}-${n}`,
        ns: g.ns,
        ip: g.ip,
        syncIP: `198.51.100.${n === "a" ? 253 : 254}`,
      });
    }
    const [a, b] = instances as [Instance, Instance];
    await ipIn(a.ns, [`link add ${SYNC_IF} type veth peer name ${SYNC_IF} netns ${b.ns}`]);
    for (const i of instances) await ipIn(i.ns, [`addr add ${i.syncIP}/30 dev ${SYNC_IF}`, `link set ${SYNC_IF} up`]);
    // The egress addresses live on the gateways' segment: node-b reaches them on-link, and the
    // router already sends 198.51.100.0/24 to node-b.
    await ipIn(lab.ns.nodeB, ["route add 198.51.100.0/28 dev gwbr"]);
    const file = join(lab.dir, "gateway.json");
    let network: Network | undefined;
    const setTenants = async (tenants: readonly HaTenant[]) => {
      // Written whole and renamed into place, as a ConfigMap update lands: a daemon never reads half a file.
      await writeFile(`${file}.tmp`, JSON.stringify(haGatewayConfig(instances, "100ms", tenants), null, 2));
      await rename(`${file}.tmp`, file);
      network = await writeBridgeConflist({
        name: `${prefix}-pods`,
        dir: lab.dir,
        egress: {
          tenants: pluginTenants(VIP, tenants.map(labTenantOf)),
          namespaces: Object.fromEntries(tenants.map((t) => [t.name, t.name])),
        },
      });
    };
    const addPod = async (t: HaTenant) => {
      const ns = await lab.addPodNamespace(`pod-${t.name}`);
      const result = JSON.parse(
        await cni("add", {
          node: lab.ns.nodeA,
          network: network!,
          pod: ns,
          cniArgs: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${t.name};K8S_POD_NAME=p`,
        }),
      ) as { ips: Array<{ address: string }> };
      return { tenant: t.name, ns, ip: result.ips[0]!.address.split("/")[0]! };
    };
    await setTenants(HA_TENANTS);
    const pods: HaScene["pods"] = [];
    for (const t of HA_TENANTS) pods.push(await addPod(t));

    const start = async (i: Instance) => {
      const d = startGatewayDaemon(i.ns, ["-f", file, "--listen", "127.0.0.1:9180"]);
      i.daemon = d;
      await d.waitFor(/HA instance /, 20_000);
    };
    const holds = async (i: Instance) =>
      (await run(["ip", "-n", i.ns, "-4", "-o", "address", "show", "dev", "eth0", "up"])).stdout.includes(` ${VIP}/`);
    const scene: HaScene = {
      lab,
      instances: [a, b],
      pods,
      servers,
      file,
      setTenants,
      addPod,
      start,
      async holders() {
        const held = await Promise.all(instances.map(holds));
        return instances.filter((_, n) => held[n]);
      },
      async killNode(i) {
        // Links first: a dying process must not get a last word out (keepalived's child, losing
        // its parent, would announce priority 0 and make the takeover look faster than a crash).
        await ipIn(i.ns, ["link set eth0 down", `link set ${SYNC_IF} down`]);
        const at = Date.now();
        // Everything in the namespace is ours: the daemon and the children it started.
        const pids = await pidsIn(i.ns);
        if (pids.length) await run(["kill", "-KILL", ...pids.map(String)], { allowFailure: true });
        await i.daemon?.exited;
        i.daemon = undefined;
        return at;
      },
      async restore(i) {
        await start(i);
        await ipIn(i.ns, ["link set eth0 up", `link set ${SYNC_IF} up`, "route replace default via 10.23.0.1"]);
        return Date.now();
      },
      async killKeepalived(i) {
        const pids: number[] = [];
        for (const pid of await pidsIn(i.ns)) if ((await comm(pid)) === "keepalived") pids.push(pid);
        if (pids.length) await run(["kill", "-KILL", ...pids.map(String)], { allowFailure: true });
        return { pids, at: Date.now() };
      },
      async cutVrrp(cut) {
        // The bridge's own forwarding path: the segment between the two instances, not their stacks.
        await nft(lab.ns.nodeB, cut, "bridge", "forward", ["ip protocol vrrp drop"]);
      },
      async cutSync(cut) {
        await nft(a.ns, cut, "inet", "input", [`iifname "${SYNC_IF}" drop`]);
        await nft(a.ns, cut, "inet", "output", [`oifname "${SYNC_IF}" drop`]);
      },
      teardown,
    };
    return scene;
  } catch (e) {
    await teardown();
    throw e;
  }
}

export interface IperfRun {
  /** Resolves with iperf3's JSON (or its error) once it has ended. */
  done: Promise<{ ok: boolean; error?: string; intervals: Array<{ start: number; bytes: number }>; bps: number }>;
}

/** A background iperf3 client in `ns`, with 0.1 s intervals (a stall shows as a run of empty ones). */
export function iperfBackground(
  ns: string,
  o: { host: string; port: number; seconds: number; reverse?: boolean; streams?: number },
): IperfRun {
  const argv = [
    ...execIn(ns),
    "iperf3",
    "-c",
    o.host,
    "-p",
    String(o.port),
    "-t",
    String(o.seconds),
    "-i",
    "0.1",
    "-J",
    "-P",
    String(o.streams ?? 1),
    ...(o.reverse ? ["-R"] : []),
  ];
  const child: ResultPromise = execa(argv[0]!, argv.slice(1), { reject: false, cleanup: true, stdin: "ignore" });
  const done = child.then((r) => {
    let json: {
      error?: string;
      intervals?: Array<{ sum: { start: number; bytes: number } }>;
      end?: { sum_received?: { bits_per_second: number } };
    } = {};
    try {
      json = JSON.parse(String(r.stdout) || "{}");
    } catch {
      json = { error: String(r.stdout).slice(0, 200) };
    }
    const ok = r.exitCode === 0 && !json.error;
    return {
      ok,
      ...(ok ? {} : { error: json.error ?? `exit ${r.exitCode}: ${String(r.stderr).trim()}` }),
      intervals: (json.intervals ?? []).map((i) => ({ start: i.sum.start, bytes: i.sum.bytes })),
      bps: json.end?.sum_received?.bits_per_second ?? 0,
    };
  });
  return { done };
}

/** The longest run of empty 0.1 s intervals, in seconds. */
export function longestStall(intervals: ReadonlyArray<{ start: number; bytes: number }>): number {
  let run = 0;
  let longest = 0;
  for (const i of intervals) {
    run = i.bytes === 0 ? run + 1 : 0;
    longest = Math.max(longest, run);
  }
  return longest / 10;
}

/** Polls until `ok()` or `ms` passed; returns whether it became true. */
export async function waitUntil(ok: () => Promise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await ok()) return true;
    await sleep(50);
  }
  return ok();
}
