/**
 * `npm run bench:failover`: how long a gateway pair's failover interrupts pods, as distributions
 * over repeated failures, in a lab of its own (src/lab/ha-scene.ts; namespaces tefo*, removed
 * on exit, failure or Ctrl-C). Each repetition kills the active as a node dies (SIGKILL, links
 * down) under 26 open connections, measures what the pods saw, then restores it (it comes back
 * as standby, under flows again); then, as many times, only the active's keepalived dies. The
 * clock is the pods': time to the first successful new connection, the longest stall of a
 * keep-alive HTTP connection and of the iperf3 flows, and whether anything was reset.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { cpus, release } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type HaStatus, haDir, haStatusFile } from "../gateway/ha/controller.js";
import { firstNewConnection, httpStall, type ProbeResult, startProbe } from "./ha-probe.js";
import { buildHaScene, type HaScene, type Instance, iperfBackground, longestStall, waitUntil } from "./ha-scene.js";
import { INET_IP, uniquePrefix } from "./topology.js";
import { ECHO_PORT, HTTP_PORT, IPERF_PORTS, PUSH_PORT, percentile } from "./traffic.js";

export interface Sample {
  /** ms from the failure to the new active's addresses being claimed (its own log of the takeover). */
  takeoverMs?: number;
  /** ms until new connections work again, from the pod of the tenant without bulk flows. */
  newConnectionMs: number;
  /** ms a keep-alive HTTP connection went without an answer across the failure, the longest of the three pods. */
  httpStallMs: number;
  /**
   * s the iperf3 flows went without a byte (0.1 s resolution), the longest of the four clients
   * over their whole run: the failover's stall, or a longer one of the saturated queues.
   */
  iperfStallS: number;
  /** Connections that failed (iperf3 errors, HTTP errors, pushes not delivered). */
  resets: number;
}

export interface FailoverBench {
  date: string;
  machine: { cpus: number; kernel: string; node: string };
  advertInterval: string;
  nodeFailure: Sample[];
  restore: Sample[];
  keepalivedFailure: Sample[];
}

const CONNECTIONS = 16 + 4 + 3 * 2;

const status = async (i: Instance): Promise<HaStatus | undefined> => {
  try {
    return JSON.parse(await readFile(haStatusFile(haDir(i.name)), "utf8")) as HaStatus;
  } catch {
    return undefined;
  }
};

/** `fail` makes the failure and resolves with when it happened (epoch ms). */
async function underFlows(scene: HaScene, fail: () => Promise<number>, after: () => Promise<number | undefined>) {
  const [acme, globex] = scene.pods as [HaScene["pods"][0], HaScene["pods"][0]];
  const iperfs = [
    iperfBackground(acme.ns, { host: INET_IP, port: IPERF_PORTS[0]!, seconds: 6, streams: 4 }),
    iperfBackground(acme.ns, { host: INET_IP, port: IPERF_PORTS[1]!, seconds: 6, streams: 4, reverse: true }),
    iperfBackground(globex.ns, { host: INET_IP, port: IPERF_PORTS[2]!, seconds: 6, streams: 4 }),
    iperfBackground(globex.ns, { host: INET_IP, port: IPERF_PORTS[3]!, seconds: 6, streams: 4, reverse: true }),
  ];
  const probes = await Promise.all(
    scene.pods.map((p) =>
      startProbe(p.ns, { host: INET_IP, echoPort: ECHO_PORT, httpPort: HTTP_PORT, pushPort: PUSH_PORT, pushAfterS: 4 }),
    ),
  );
  await sleep(2000);
  const t0 = await fail();
  const takeoverAt = await after();
  const iperf = await Promise.all(iperfs.map((r) => r.done));
  const results: ProbeResult[] = await Promise.all(probes.map((p) => p.stop()));
  const resets =
    iperf.filter((i) => !i.ok).length +
    results.reduce(
      (n, p) => n + p.http.errors.length + (p.http.sockets > 1 ? 1 : 0) + (p.push.got === "push" ? 0 : 1),
      0,
    );
  return {
    ...(takeoverAt !== undefined ? { takeoverMs: takeoverAt - t0 } : {}),
    newConnectionMs: firstNewConnection(results[2]!, t0) ?? Number.POSITIVE_INFINITY,
    httpStallMs: Math.max(...results.map((p) => httpStall(p, t0))),
    iperfStallS: Math.max(...iperf.map((i) => longestStall(i.intervals))),
    resets,
  } satisfies Sample;
}

async function roles(scene: HaScene): Promise<[Instance, Instance]> {
  const holders = await scene.holders();
  if (holders.length !== 1) throw new Error(`expected one holder of the shared address, found ${holders.length}`);
  return [holders[0]!, scene.instances.find((i) => i !== holders[0])!];
}

/** When the new active says it took over (its status file), as epoch ms. */
async function takeoverOf(i: Instance, since: number): Promise<number | undefined> {
  let at: number | undefined;
  await waitUntil(async () => {
    const t = (await status(i))?.lastTakeover?.at;
    at = t ? Date.parse(t) : undefined;
    return at !== undefined && at >= since;
  }, 5000);
  return at !== undefined && at >= since ? at : undefined;
}

export async function benchFailover(o: { n: number; out: string }): Promise<number> {
  const say = (s: string) => process.stdout.write(`  · ${s}\n`);
  const scene = await buildHaScene(uniquePrefix("fo"));
  const onSignal = () => void scene.teardown().finally(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const [a, b] = scene.instances;
    await scene.start(a);
    if (!(await waitUntil(async () => (await status(a))?.role === "active", 10_000)))
      throw new Error("a never became active");
    await scene.start(b);
    if (!(await waitUntil(async () => (await status(b))?.role === "standby", 10_000)))
      throw new Error("b never became standby");
    const r: FailoverBench = {
      date: new Date().toISOString().slice(0, 19).replace(/:/g, "-"),
      machine: { cpus: cpus().length, kernel: release(), node: process.version },
      advertInterval: "100ms",
      nodeFailure: [],
      restore: [],
      keepalivedFailure: [],
    };
    for (let i = 0; i < o.n; i++) {
      const [active, standby] = await roles(scene);
      const t = Date.now();
      const s = await underFlows(
        scene,
        () => scene.killNode(active),
        () => takeoverOf(standby, t),
      );
      r.nodeFailure.push(s);
      say(`node failure ${i + 1}/${o.n}: ${JSON.stringify(s)}`);
      const back = await underFlows(
        scene,
        () => scene.restore(active),
        async () => {
          await waitUntil(async () => (await status(active))?.role === "standby", 10_000);
          return undefined;
        },
      );
      r.restore.push(back);
      say(`restore ${i + 1}/${o.n}: ${JSON.stringify(back)}`);
    }
    for (let i = 0; i < o.n; i++) {
      const [active, standby] = await roles(scene);
      const t = Date.now();
      const s = await underFlows(
        scene,
        async () => (await scene.killKeepalived(active)).at,
        () => takeoverOf(standby, t),
      );
      r.keepalivedFailure.push(s);
      say(`keepalived failure ${i + 1}/${o.n}: ${JSON.stringify(s)}`);
      // Its keepalived is back (as standby) before the next round.
      await waitUntil(async () => (await status(active))?.vrrpState === "BACKUP", 10_000);
    }
    await mkdir(o.out, { recursive: true });
    const files = [join(o.out, `failover-${r.date}.json`), join(o.out, `failover-${r.date}.md`)];
    await writeFile(files[0]!, `${JSON.stringify(r, null, 2)}\n`);
    await writeFile(files[1]!, `${failoverMarkdown(r)}\n`);
    process.stdout.write(`\n${failoverMarkdown(r)}\nwritten: ${files.join(", ")}\n`);
    return 0;
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    await scene.teardown();
  }
}

export function failoverMarkdown(r: FailoverBench): string {
  const dist = (xs: number[], fmt: (x: number) => string) =>
    xs.length ? `${fmt(percentile(xs, 50))} / ${fmt(percentile(xs, 90))} / ${fmt(Math.max(...xs))}` : "-";
  const msf = (x: number) => (Number.isFinite(x) ? `${Math.round(x)}` : "never");
  const sf = (x: number) => x.toFixed(1);
  const row = (what: string, s: Sample[]) =>
    `| ${what} (n = ${s.length}) | ${dist(
      s.flatMap((x) => (x.takeoverMs === undefined ? [] : [x.takeoverMs])),
      msf,
    )} | ${dist(
      s.map((x) => x.newConnectionMs),
      msf,
    )} | ${dist(
      s.map((x) => x.httpStallMs),
      msf,
    )} | ${dist(
      s.map((x) => x.iperfStallS),
      sf,
    )} | ${s.reduce((n, x) => n + x.resets, 0)} of ${s.length * CONNECTIONS} |`;
  return [
    `# tenant-egress gateway failover, ${r.date}`,
    "",
    `${r.machine.cpus} CPUs, kernel ${r.machine.kernel}, Node ${r.machine.node}; VRRPv3 advertisements every ${r.advertInterval}; ${CONNECTIONS} connections open through the pair at each failure (4 iperf3 clients × 4 streams + their control connections in two tenants, and in each of three tenants' pods a keep-alive HTTP connection and an idle one the server pushes to after the failure). New connections are timed from the third tenant's pod, whose class no bulk flow saturates. Reproduce: \`npm run bench:failover\`.`,
    "",
    "p50 / p90 / max:",
    "",
    "| failure | takeover done (ms) | new connections work again (ms) | keep-alive HTTP stall (ms) | iperf3 stall (s) | connections reset |",
    "|---|---|---|---|---|---|",
    row("active node dies (SIGKILL, links down)", r.nodeFailure),
    row("failed instance returns", r.restore),
    row("active's keepalived dies", r.keepalivedFailure),
    "",
    "Anchors (their documentation and issues; every one of them resets established connections): spidernet egressgateway 5–15 s (≈40 s without its heartbeat), Antrea a few seconds (15 s with a missed gratuitous ARP), OVN-Kubernetes 5–11 s, Kube-OVN ≈3 s with BFD defaults, Cilium OSS no failover.",
  ].join("\n");
}
