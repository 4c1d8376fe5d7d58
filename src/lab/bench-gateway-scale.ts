/**
 * The gateway at scale: many tenants with /16 overlays and many active pods, served by the
 * `run` daemon. What it reports: the first apply, a no-op reconcile, the daemon's RSS, and how
 * long the daemon takes to hold a neighbour entry for every pod that transmitted, a metrics
 * scrape, and how
 * each grows from one tenant to all of them and from a few pods to all of them.
 *
 * Pods are real senders: a namespace on the gateways' node sends one real VXLAN packet per pod
 * (its tenant's VNI, its derived MAC) from one of twenty VTEP addresses, and the gateway's
 * kernel learns each exactly as it learns a pod's first packet. Attaching a thousand pods
 * through the CNI chain would measure the plugin, not the gateway.
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { run } from "../net/run.js";
import { overlayMac } from "../net/vxlan.js";
import { configMapDir, type DaemonProcess, startGatewayDaemon } from "./gateway-cli.js";
import { ipIn, type Lab } from "./topology.js";
import { sendVxlan } from "./vxlan-sender.js";

export interface ScaleRow {
  tenants: number;
  pods: number;
  /** The daemon's first reconcile (everything missing), ms. */
  firstApplyMs?: number;
  /** From the first packet sent to a neighbour entry for every pod, ms. */
  learnMs?: number;
  /** Median of five SIGHUP reconciles that find nothing to change, ms. */
  noopMs: number;
  rssMB: number;
  /** V8's live heap as the daemon's own metrics report it (nodejs_heap_size_used_bytes), MB. */
  heapMB: number;
  /** Median of five GETs of /metrics (curl's time_total, inside the gateway's namespace), ms. */
  scrapeMs: number;
  neighbours: number;
}

export interface ScaleBench {
  maxTenants: number;
  maxPods: number;
  rows: ScaleRow[];
}

const VTEPS = 20;
const LISTEN = "127.0.0.1:9464";
const METRICS = `http://${LISTEN}/metrics`;
const overlay = (t: number) => `10.${100 + t}.0.0/16`;
const vni = (t: number) => 1000 + t;
/** Pod k: tenant k mod T, the (k div T)-th host of its /16 after the gateway's own address. */
const podIP = (k: number, tenants: number) => {
  const host = Math.floor(k / tenants) + 2;
  return `10.${100 + (k % tenants)}.${host >> 8}.${host & 255}`;
};

function scaleConfig(tenants: number) {
  return {
    linkRate: "10gbit",
    tenants: Array.from({ length: tenants }, (_, t) => ({
      name: `t${t}`,
      vni: vni(t),
      overlaySubnet: overlay(t),
      allowedSources: ["10.23.0.0/24"],
      upload: { rate: "10mbit", ceil: "100mbit" },
      download: { rate: "10mbit", ceil: "100mbit" },
    })),
  };
}

const durationOf = (line: string) => Number((JSON.parse(line) as { durationMs: number }).durationMs);

async function rssMB(pid: number): Promise<number> {
  const status = (await run(["cat", `/proc/${pid}/status`])).stdout;
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
}

async function neighbourCount(ns: string): Promise<number> {
  const out = (await run(["ip", "-n", ns, "neigh", "show", "nud", "permanent"])).stdout.trim();
  return out ? out.split("\n").length : 0;
}

async function noopReconcile(d: DaemonProcess): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    const from = d.lines.length;
    d.signal("SIGHUP");
    const line = await d.waitFor(/"reason":"sighup"/, 60_000, from);
    if (!line.includes('"changes":[]')) throw new Error(`a reconcile with nothing to change was expected: ${line}`);
    samples.push(durationOf(line));
  }
  return samples.sort((a, b) => a - b)[2]!;
}

/** Five scrapes: the median time, and the live heap the last one reports. */
async function scrape(ns: string): Promise<{ scrapeMs: number; heapMB: number }> {
  const samples: number[] = [];
  let text = "";
  for (let i = 0; i < 5; i++) {
    const r = await run(["ip", "netns", "exec", ns, "curl", "-sf", "-w", "\n%{time_total}", METRICS]);
    const at = r.stdout.lastIndexOf("\n");
    text = r.stdout.slice(0, at);
    samples.push(Number(r.stdout.slice(at + 1)) * 1000);
  }
  const heap = Number(/^nodejs_heap_size_used_bytes (\S+)/m.exec(text)?.[1] ?? NaN);
  return { scrapeMs: samples.sort((a, b) => a - b)[2]!, heapMB: heap / 2 ** 20 };
}

/** Sends pods [from, to) of a gateway serving `tenants`, spread over the VTEPs. */
async function sendPods(senders: string, gwIP: string, tenants: number, from: number, to: number): Promise<void> {
  const byVtep = new Map<number, Array<{ vni: number; dstMac: string; srcMac: string }>>();
  for (let k = from; k < to; k++) {
    const t = k % tenants;
    const list = byVtep.get(k % VTEPS) ?? [];
    list.push({ vni: vni(t), dstMac: overlayMac(`10.${100 + t}.0.1`), srcMac: overlayMac(podIP(k, tenants)) });
    byVtep.set(k % VTEPS, list);
  }
  await Promise.all(
    [...byVtep].map(([v, frames]) => sendVxlan(senders, { to: gwIP, from: `10.23.0.${100 + v}`, frames })),
  );
}

async function waitForNeighbours(ns: string, n: number, timeoutMs = 60_000): Promise<void> {
  const started = Date.now();
  while ((await neighbourCount(ns)) < n) {
    if (Date.now() - started > timeoutMs)
      throw new Error(
        `the gateway holds ${await neighbourCount(ns)} of ${n} pods' neighbour entries after ${timeoutMs} ms`,
      );
    await sleep(20);
  }
}

const steps = (candidates: number[], max: number) => [...new Set([...candidates.filter((c) => c < max), max])];

export async function benchGatewayScale(
  lab: Lab,
  maxTenants: number,
  maxPods: number,
  progress: (s: string) => void,
): Promise<ScaleBench> {
  const gw = await lab.addGateway("scale-gw", 5);
  const senders = await lab.addGateway("scale-pods", 6);
  await ipIn(
    senders.ns,
    Array.from({ length: VTEPS }, (_, v) => `addr add 10.23.0.${100 + v}/24 dev eth0`),
  );
  const rows: ScaleRow[] = [];
  const start = async (tenants: number, tag: string) => {
    const cm = await configMapDir(join(lab.dir, `scale-${tag}`), "gateway.json", scaleConfig(tenants));
    const d = startGatewayDaemon(gw.ns, [
      "-f",
      cm.file,
      "--log-format",
      "json",
      "--resync",
      "10m",
      "--cleanup-on-exit",
      "--listen",
      LISTEN,
    ]);
    const first = durationOf(await d.waitFor(/"reason":"start"/, 120_000));
    return { d, first };
  };

  for (const tenants of steps([1, 10, 25], maxTenants)) {
    progress(
      `${tenants} tenant${tenants > 1 ? "s" : ""} with /16 overlays, no pods: first apply, no-op reconcile, RSS`,
    );
    const { d, first } = await start(tenants, `t${tenants}`);
    try {
      rows.push({
        tenants,
        pods: 0,
        firstApplyMs: first,
        noopMs: await noopReconcile(d),
        rssMB: await rssMB(d.pid),
        ...(await scrape(gw.ns)),
        neighbours: await neighbourCount(gw.ns),
      });
    } finally {
      await d.stop();
    }
  }

  const { d } = await start(maxTenants, "pods");
  try {
    let sent = 0;
    for (const pods of steps([10, 100], maxPods)) {
      progress(
        `${maxTenants} tenants, ${pods} pods transmitting from ${VTEPS} VTEPs: time to learn them, no-op reconcile, RSS`,
      );
      const t0 = Date.now();
      await sendPods(senders.ns, gw.ip, maxTenants, sent, pods);
      await waitForNeighbours(gw.ns, pods);
      const learnMs = Date.now() - t0;
      sent = pods;
      rows.push({
        tenants: maxTenants,
        pods,
        learnMs,
        noopMs: await noopReconcile(d),
        rssMB: await rssMB(d.pid),
        ...(await scrape(gw.ns)),
        neighbours: await neighbourCount(gw.ns),
      });
    }
  } finally {
    await d.stop();
  }
  return { maxTenants, maxPods, rows };
}
