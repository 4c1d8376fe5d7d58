/**
 * `npm run demo`: the whole system on one machine, measured and shown as one table. It builds
 * the standard scene (lab/scenario.ts), then for every pod (and the nested container behind
 * the CI runner) asks the internet host which source address it saw, measures upload and
 * download against the tenant's limits, RTT idle and under load, and checks that private
 * traffic stayed off the tunnel. It tears everything down on success, failure or Ctrl-C, and
 * proves the root network namespace is exactly as it found it.
 */
import { formatRate, parseRate } from "../net/rates.js";
import { buildScene, type Scene, type ScenePod, TENANTS } from "./scenario.js";
import { netnsSnapshot } from "./snapshot.js";
import { deleteNamespaces, INET_IP, namespacesWithPrefix } from "./topology.js";
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

const say = (text: string) => process.stdout.write(`${text}\n`);
const step = (text: string) => say(`  · ${text}`);

async function measure(scene: Scene, endpoint: string, ns: string, pod: ScenePod, tunnelled: boolean): Promise<Row> {
  step(`measuring ${endpoint}: source address, upload, download, RTT idle and under load, private path`);
  const tenant = TENANTS.find((t) => t.name === pod.tenant);
  const source = await sourceSeenBy(ns);
  const idle = await rtt(ns, INET_IP, 10);
  const [up, loaded] = await Promise.all([
    iperf(ns, { port: IPERF_PORT, seconds: MEASURE_S }),
    (async () => {
      await new Promise((r) => setTimeout(r, 1000));
      return rtt(ns, INET_IP, 8);
    })(),
  ]);
  const down = await iperf(ns, { port: IPERF_PORT, seconds: MEASURE_S, reverse: true });
  // Private traffic: node-b's address is private; it must be reached directly, never through the tunnel.
  let privateDirect = "yes";
  if (tunnelled) {
    const cap = await capture(pod.ns, "te-eth0", "net 10.0.0.0/8");
    const reached = await ping(ns, "10.0.2.2", 3);
    const seen = await cap.stop();
    privateDirect =
      reached && seen.length === 0
        ? "yes"
        : `NO (${reached ? "reached" : "unreachable"}, ${seen.length} packets in the tunnel)`;
  } else {
    privateDirect = (await ping(ns, "10.0.2.2", 3)) ? "yes" : "NO (unreachable)";
  }
  return {
    endpoint,
    tenant: pod.tenant ?? "-",
    via: endpoint.endsWith("(nested)") ? "forwarded through its pod" : pod.via,
    source:
      source === scene.gateway.ip ? `${source} (gateway)` : `${source} (${source === pod.ip ? "pod itself" : "other"})`,
    ...(tenant ? { upLimit: parseRate(tenant.upload.rate)!, downLimit: parseRate(tenant.download.rate)! } : {}),
    up: up.bitsPerSecond,
    down: down.bitsPerSecond,
    rttIdle: percentile(idle.samples, 50),
    rttLoaded: percentile(loaded.samples, 50),
    privateDirect,
  };
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
    const rows: Row[] = [];
    for (const pod of scene.pods) {
      rows.push(await measure(scene, pod.name, pod.ns, pod, pod.tenant !== undefined));
      if (pod.nested) rows.push(await measure(scene, `${pod.name} (nested)`, pod.nested, pod, true));
    }
    say("");
    say(formatTable(rows));
    say("");
    say(
      `Gateway ${scene.gateway.ip} serves ${TENANTS.map((t) => `${t.name} (upload ${t.upload.rate}, download ${t.download.rate})`).join(" and ")}.`,
    );
    say(
      "Limits count inner packets (Ethernet frames); TCP goodput is at most ~95% of them. RTT is ping to the internet host, p50.",
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
