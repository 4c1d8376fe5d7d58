/**
 * The eyes of the failover tests and benchmark, run inside a pod: a Node process that, for as
 * long as it runs, opens a new connection to the internet host every 50 ms (recovery is read from
 * the attempts' start times, so an attempt lost in the outage, waiting for TCP's 1 s SYN retry,
 * does not hide it; the 1.5 s timeout only has to outlast a starved CPU), keeps one HTTP keep-alive connection busy with a request every 100 ms, and holds one
 * idle connection the server pushes to after a delay. Every event carries the wall-clock time
 * (the lab's namespaces share one clock), so "when did new connections work again" and "how long
 * did a flow stall" are read from what the pod saw, not from the gateways' logs.
 */
import { execa, type ResultPromise } from "execa";
import { execIn } from "./traffic.js";

const SCRIPT = `
const net = require("net"), http = require("http");
const o = JSON.parse(process.argv[1]);
const out = { connects: [], http: { done: [], errors: [], sockets: 0 }, push: { got: "", error: "" } };
let stopping = false;
const attempt = () => {
  const start = Date.now();
  const s = net.connect({ host: o.host, port: o.echoPort });
  const t = setTimeout(() => { s.destroy(); out.connects.push([start, Date.now(), 0]); }, 1500);
  s.on("connect", () => { clearTimeout(t); out.connects.push([start, Date.now(), 1]); s.destroy(); });
  s.on("error", () => { clearTimeout(t); out.connects.push([start, Date.now(), 0]); });
};
const connector = setInterval(attempt, 50);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const seen = new WeakSet();
const request = () => {
  if (stopping) return;
  const req = http.get({ host: o.host, port: o.httpPort, agent, path: "/" }, (res) => {
    if (!seen.has(req.socket)) { seen.add(req.socket); out.http.sockets++; }
    res.resume();
    res.on("end", () => { out.http.done.push(Date.now()); setTimeout(request, 100); });
  });
  req.on("error", (e) => { out.http.errors.push(e.code || e.message); setTimeout(request, 100); });
};
request();
const push = net.connect({ host: o.host, port: o.pushPort }, () => push.write(o.pushAfterS + "\\n"));
push.on("data", (d) => { out.push.got += String(d).trim(); });
push.on("error", (e) => { out.push.error = e.code || e.message; });
// The push is an event of its own: waited for (within a bound) rather than cut off by the end
// of the other flows, so a push that TCP had to retransmit still counts as delivered.
const report = () => { process.stdout.write(JSON.stringify(out)); process.exit(0); };
const finish = () => {
  stopping = true;
  clearInterval(connector);
  if (out.push.got || out.push.error) return setTimeout(report, 300);
  push.on("data", () => setTimeout(report, 50));
  push.on("close", () => setTimeout(report, 50));
  setTimeout(report, 1000 * o.pushWaitS);
};
process.on("SIGINT", finish);
console.error("ready");
`;

export interface ProbeOptions {
  host: string;
  echoPort: number;
  httpPort: number;
  pushPort: number;
  /** The server pushes on the idle connection this long after it opened. */
  pushAfterS: number;
  /** How long stop() still waits for a push that has not arrived (default 10 s). */
  pushWaitS?: number;
}

export interface ProbeResult {
  /** [started, ended, ok] epoch ms of every new-connection attempt. */
  connects: Array<[number, number, number]>;
  http: { done: number[]; errors: string[]; sockets: number };
  push: { got: string; error: string };
}

export interface Probe {
  stop(): Promise<ProbeResult>;
}

export async function startProbe(ns: string, o: ProbeOptions): Promise<Probe> {
  const child: ResultPromise = execa(
    execIn(ns)[0]!,
    [
      ...execIn(ns).slice(1),
      "env",
      "-u",
      "NODE_OPTIONS",
      "node",
      "-e",
      SCRIPT,
      JSON.stringify({ pushWaitS: 10, ...o }),
    ],
    { reject: false, cleanup: true, stdin: "ignore", buffer: { stdout: true, stderr: false }, stderr: "pipe" },
  );
  await new Promise<void>((resolve, reject) => {
    child.stderr!.once("data", () => resolve());
    void child.then((r) => reject(new Error(`the probe in ${ns} ended before it started: ${r.exitCode}`)));
  });
  return {
    async stop() {
      child.kill("SIGINT");
      const r = await child;
      return JSON.parse(String(r.stdout)) as ProbeResult;
    },
  };
}

/** An attempt that took this long needed TCP's SYN retransmission (its first retry is after 1 s). */
const SYN_RETRY_MS = 1000;

/**
 * ms from `t0` until new connections work again: the end of the first prompt success (connected
 * without a SYN retransmission) started after the last attempt that failed or needed one (so an
 * instance still forwarding for a moment after `t0`, then dropping out, is not mistaken for a
 * recovery, and an outage shorter than the attempts' timeout, which a retried SYN outlasts, is
 * not hidden); the first success after `t0` if every attempt was prompt.
 */
export function firstNewConnection(r: ProbeResult, t0: number): number | undefined {
  const after = r.connects.filter(([s]) => s >= t0);
  const prompt = ([s, e, k]: [number, number, number]) => k === 1 && e - s < SYN_RETRY_MS;
  const lastFailed = Math.max(t0 - 1, ...after.filter((a) => !prompt(a)).map(([s]) => s));
  const ok = after.filter((a) => prompt(a) && a[0] > lastFailed).map(([, e]) => e);
  return ok.length ? Math.min(...ok) - t0 : undefined;
}

/** The longest stretch without a completed keep-alive request that overlaps `t0`, ms. */
export function httpStall(r: ProbeResult, t0: number): number {
  const done = [...r.http.done].sort((a, b) => a - b);
  const before = done.filter((t) => t <= t0).at(-1) ?? t0;
  const after = done.find((t) => t > t0);
  return after === undefined ? Number.POSITIVE_INFINITY : after - before;
}
