/**
 * `npm run demo`: the whole system on one machine, measured and shown as one table. It builds
 * the standard scene (lab/scenario.ts), then for every pod (and the nested container behind
 * the CI runner) asks the internet host which source address it saw, measures upload and
 * download against the tenant's limits, RTT idle and under load, and checks that private
 * traffic stayed off the tunnel. One more pod is dual stack (a network of its own, IPv4 and
 * IPv6 ranges): its IPv6 row shows that tenant's IPv6 leaving with the gateway's IPv6, shaped by
 * the same limits. It tears everything down on success, failure or Ctrl-C, and
 * proves the root network namespace is exactly as it found it.
 */
import { formatRate, parseRate } from "../net/rates.js";
import { run } from "../net/run.js";
import { cni, writeBridgeConflist } from "./cni-client.js";
import { buildScene, type Scene, type ScenePod, TENANTS } from "./scenario.js";
import { netnsSnapshot } from "./snapshot.js";
import { deleteNamespaces, INET_IP, INET6_IP, namespacesWithPrefix, POD6_SUBNET } from "./topology.js";
import { capture, iperf, percentile, ping, rtt, sourceSeenBy } from "./traffic.js";

export const DEMO_PREFIX = "tedemo";
const MEASURE_S = 3;
const IPERF_PORT = 5201;

interface Row {
  endpoint: string;
  tenant: string;
  via: string;
  source: string;
  upLimit?: number;
  up: number;
  downLimit?: number;
  down: number;
  rttIdle: number;
  rttLoaded: number;
  privateDirect: string;
}

/** What a row measures with: the internet host, a private address beyond node-a, the gateway's uplink address. */
interface Family {
  inet: string;
  /** node-b's uplink: private, so reached directly, never through the tunnel. */
  privateHost: string;
  /** pcap filter for the private traffic, which must not be in the tunnel. */
  privateNet: string;
  gatewaySource: string;
}

const say = (text: string) => process.stdout.write(`${text}\n`);
const step = (text: string) => say(`  · ${text}`);

async function measure(endpoint: string, ns: string, pod: ScenePod, tunnelled: boolean, f: Family): Promise<Row> {
  step(`measuring ${endpoint}: source address, upload, download, RTT idle and under load, private path`);
  const tenant = TENANTS.find((t) => t.name === pod.tenant);
  const source = await sourceSeenBy(ns, f.inet);
  const idle = await rtt(ns, f.inet, 10);
  const [up, loaded] = await Promise.all([
    iperf(ns, { port: IPERF_PORT, seconds: MEASURE_S, host: f.inet }),
    (async () => {
      await new Promise((r) => setTimeout(r, 1000));
      return rtt(ns, f.inet, 8);
    })(),
  ]);
  const down = await iperf(ns, { port: IPERF_PORT, seconds: MEASURE_S, reverse: true, host: f.inet });
  let privateDirect = "yes";
  if (tunnelled) {
    const cap = await capture(pod.ns, "te-eth0", f.privateNet);
    const reached = await ping(ns, f.privateHost, 3);
    const seen = await cap.stop();
    privateDirect =
      reached && seen.length === 0
        ? "yes"
        : `NO (${reached ? "reached" : "unreachable"}, ${seen.length} packets in the tunnel)`;
  } else {
    privateDirect = (await ping(ns, f.privateHost, 3)) ? "yes" : "NO (unreachable)";
  }
  return {
    endpoint,
    tenant: pod.tenant ?? "-",
    via: endpoint.endsWith("(nested)") ? "forwarded through its pod" : pod.via,
    source:
      source === f.gatewaySource ? `${source} (gateway)` : `${source} (${source === pod.ip ? "pod itself" : "other"})`,
    ...(tenant ? { upLimit: parseRate(tenant.upload.rate)!, downLimit: parseRate(tenant.download.rate)! } : {}),
    up: up.bitsPerSecond,
    down: down.bitsPerSecond,
    rttIdle: percentile(idle.samples, 50),
    rttLoaded: percentile(loaded.samples, 50),
    privateDirect,
  };
}

/**
 * A dual-stack pod of tenant acme on a network of its own (the scene's is IPv4 only), with an
 * IPv4 range apart from the scene's on the same bridge: host-local keeps one state per network.
 */
async function addDualStackPod(scene: Scene): Promise<ScenePod> {
  const acme = TENANTS.find((t) => t.name === "acme")!;
  const network = await writeBridgeConflist({
    name: `${DEMO_PREFIX}-dual`,
    dir: scene.lab.dir,
    range: { start: "10.22.0.200", end: "10.22.0.250" },
    ipv6Subnet: POD6_SUBNET,
    egress: {
      tenants: { acme: { gateway: scene.gateway.ip, vni: acme.vni, overlaySubnet: acme.overlaySubnet } },
      namespaces: { "acme-prod": "acme" },
      enforce: true,
    },
  });
  const ns = await scene.lab.addPodNamespace("pod-acme-dual");
  const result = JSON.parse(
    await cni("add", {
      node: scene.lab.ns.nodeA,
      network,
      pod: ns,
      cniArgs: "IgnoreUnknown=1;K8S_POD_NAMESPACE=acme-prod;K8S_POD_NAME=dual",
    }),
  ) as { ips: Array<{ address: string }> };
  // Its IPv6: what the internet would see if it left unsteered.
  const ip = result.ips.find((x) => x.address.includes(":"))!.address.split("/")[0]!;
  return { name: "acme-dual", tenant: "acme", ns, ip, via: "namespace acme-prod" };
}

/** The gateway's global IPv6 on its uplink (the scene keeps only its IPv4). */
async function gatewayIPv6(ns: string): Promise<string> {
  const r = await run(["ip", "-n", ns, "-6", "-json", "addr", "show", "dev", "eth0", "scope", "global"]);
  return (JSON.parse(r.stdout) as Array<{ addr_info: Array<{ local: string }> }>)[0]!.addr_info[0]!.local;
}

function rate(limit: number | undefined, measured: number): string {
  if (limit === undefined) return `no limit → ${formatRate(measured)}`;
  return `${formatRate(limit)} → ${formatRate(measured)} (${Math.round((measured / limit) * 100)}%)`;
}

export function formatTable(rows: Row[]): string {
  const header = [
    "POD",
    "TENANT (how chosen)",
    "SOURCE THE INTERNET SAW",
    "UPLOAD limit → measured",
    "DOWNLOAD limit → measured",
    "RTT idle → loaded",
    "PRIVATE DIRECT",
  ];
  const cells = rows.map((r) => [
    r.endpoint,
    `${r.tenant} (${r.via})`,
    r.source,
    rate(r.upLimit, r.up),
    rate(r.downLimit, r.down),
    `${r.rttIdle.toFixed(2)} → ${r.rttLoaded.toFixed(2)} ms`,
    r.privateDirect,
  ]);
  const all = [header, ...cells];
  const widths = header.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  const line = (row: string[]) =>
    row
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}

export async function demo(opts: { keep: boolean }): Promise<number> {
  if ((await namespacesWithPrefix(`${DEMO_PREFIX}-`)).length) {
    say(`A lab from an earlier run is still up (namespaces ${DEMO_PREFIX}-*). Remove it with: npm run lab -- down`);
    return 1;
  }
  const started = Date.now();
  const rootBefore = await netnsSnapshot();
  say(
    "tenant-egress demo: per-tenant egress through VXLAN to an egress gateway, in network namespaces on this machine",
  );
  let scene: Scene | undefined;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    say("\ninterrupted: tearing the lab down…");
    void deleteNamespaces(`${DEMO_PREFIX}-`).finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    scene = await buildScene(DEMO_PREFIX, step);
    step("attaching pod acme-dual (dual stack) through its own bridge + host-local + tenant-egress");
    const dual = await addDualStackPod(scene);
    const v4: Family = {
      inet: INET_IP,
      privateHost: "10.0.2.2",
      privateNet: "net 10.0.0.0/8",
      gatewaySource: scene.gateway.ip,
    };
    const v6: Family = {
      inet: INET6_IP,
      privateHost: "fd00:2::2",
      privateNet: "ip6 and host fd00:2::2", // not all of fd00::/8: the overlay IPv6 is ULA too
      gatewaySource: await gatewayIPv6(scene.gateway.ns),
    };
    const rows: Row[] = [];
    for (const pod of scene.pods) {
      rows.push(await measure(pod.name, pod.ns, pod, pod.tenant !== undefined, v4));
      if (pod.nested) rows.push(await measure(`${pod.name} (nested)`, pod.nested, pod, true, v4));
    }
    rows.push(await measure(`${dual.name} (IPv6)`, dual.ns, dual, true, v6));
    say("");
    say(formatTable(rows));
    say("");
    say(
      `Gateway ${scene.gateway.ip} serves ${TENANTS.map((t) => `${t.name} (upload ${t.upload.rate}, download ${t.download.rate})`).join(" and ")}.`,
    );
    say(
      "Limits count inner packets (Ethernet frames); TCP goodput is at most ~95% of them (~94% over IPv6, whose header is 20 bytes longer). RTT is ping to the internet host, p50.",
    );
    if (opts.keep) {
      say(
        `\nThe lab stays up. A shell in a namespace: ip netns exec <name> bash   (namespaces: ${(await namespacesWithPrefix(`${DEMO_PREFIX}-`)).join(", ")})`,
      );
      say("Gateway status: ip netns exec tedemo-gateway dist/tenant-egress-gateway status");
      say("The internet host's servers stopped with the demo; start one with: ip netns exec tedemo-inet iperf3 -s");
      say("Remove the lab with: npm run lab -- down");
      await scene.servers.stop();
      return 0;
    }
    return 0;
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    if (scene && !opts.keep && !interrupted) {
      step("tearing the lab down");
      await scene.teardown();
      const rootAfter = await netnsSnapshot();
      say(
        rootAfter === rootBefore
          ? "Root network namespace: unchanged (links, addresses, rules, all routing tables, iptables, qdiscs and sysctls compared before and after)."
          : "Root network namespace: CHANGED — this is a bug, please report it.",
      );
      say(`Done in ${Math.round((Date.now() - started) / 1000)} s.`);
    }
  }
}

/** `npm run lab -- down`: removes a lab left up by `demo --keep` (or a crashed run). */
export async function labDown(): Promise<number> {
  const left = await namespacesWithPrefix(`${DEMO_PREFIX}-`);
  await deleteNamespaces(`${DEMO_PREFIX}-`);
  say(left.length ? `removed ${left.length} namespaces: ${left.join(", ")}` : "no lab is up");
  return 0;
}
