/**
 * Traffic in the lab: the internet host's servers (one that answers with the client's address
 * as it saw it, one that swallows uploads), clients run from a pod, and
 * packet captures. These are the eyes of the tests and the demo: "where did the traffic go"
 * is answered by what the far end saw and what crossed each interface, not by configuration.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { run } from "../net/run.js";
import { type Background, startIn } from "./process.js";
import { INET_IP } from "./topology.js";

export const ECHO_PORT = 8080;
export const SINK_PORT = 8081;
/** Reads a number N, then pushes one line after N seconds of silence: a server push to an idle client. */
export const PUSH_PORT = 8082;
/** HTTP/1.1 that keeps connections open for minutes: one keep-alive connection can outlive a failover. */
export const HTTP_PORT = 8083;
export const IPERF_PORTS = [5201, 5202, 5203, 5204];

// A client that hangs up early (a readiness probe, a killed test) resets the socket: without an
// error handler that would crash the server for every later test.
const SERVERS = `
const net = require("net");
const serve = (port, handle) => net.createServer((s) => { s.on("error", () => {}); handle(s); }).listen(port);
serve(${ECHO_PORT}, (s) => s.end(s.remoteAddress.replace(/^::ffff:/, "") + "\\n"));
serve(${SINK_PORT}, (s) => { s.resume(); s.on("end", () => s.end()); });
serve(${PUSH_PORT}, (s) => s.once("data", (d) => setTimeout(() => s.end("push\\n"), 1000 * Number(String(d).trim()))));
const http = require("http").createServer((q, r) => r.end(q.socket.remoteAddress.replace(/^::ffff:/, "") + "\\n"));
http.keepAliveTimeout = 600000;
http.headersTimeout = 0;
http.requestTimeout = 0;
http.on("clientError", (e, s) => s.destroy());
http.listen(${HTTP_PORT});
console.log("ready");
`;

/**
 * The argv prefix that runs a command in `ns`: a name under /run/netns, or a path to a network
 * namespace (containerd's pods live in its mount namespace, reached through /proc/<pid>/root).
 */
export function execIn(ns: string): string[] {
  return ns.includes("/") ? ["nsenter", `--net=${ns}`, "--"] : ["ip", "netns", "exec", ns];
}

async function waitForPort(ns: string, port: number, what: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const r = await run([...execIn(ns), "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${port}`], { allowFailure: true });
    if (r.exitCode === 0) return;
    await sleep(100);
  }
  throw new Error(`${what} did not start listening on port ${port} in ${ns}`);
}

/** Starts the internet host's servers (echo, sink, push, one iperf3 per IPERF_PORTS); resolves once they listen. */
export async function startInetServers(inetNs: string): Promise<Background> {
  const all = [
    startIn(inetNs, ["env", "-u", "NODE_OPTIONS", "-u", "NODE_EXTRA_CA_CERTS", "node", "-e", SERVERS]),
    ...IPERF_PORTS.map((p) => startIn(inetNs, ["iperf3", "-s", "-p", String(p)])),
  ];
  const stop = async () => (await Promise.all(all.map((b) => b.stop()))).join("");
  try {
    await waitForPort(inetNs, ECHO_PORT, "the echo server");
    for (const p of IPERF_PORTS) await waitForPort(inetNs, p, "iperf3");
  } catch (e) {
    await stop();
    throw e;
  }
  return { pid: all[0]!.pid, stop };
}

export interface IperfResult {
  /** Goodput the receiver saw, bits/s. */
  bitsPerSecond: number;
  retransmits: number;
}

/** Runs an iperf3 TCP test from `ns`; `reverse` makes the internet host send (a download). */
export async function iperf(
  ns: string,
  o: { port: number; seconds: number; reverse?: boolean; streams?: number; host?: string },
): Promise<IperfResult> {
  const args = [
    "iperf3",
    "-c",
    o.host ?? INET_IP,
    "-p",
    String(o.port),
    "-t",
    String(o.seconds),
    "-J",
    "-O",
    "1",
    "-P",
    String(o.streams ?? 1),
    ...(o.reverse ? ["-R"] : []),
  ];
  const r = await run([...execIn(ns), "timeout", String(o.seconds + 15), ...args], { allowFailure: true });
  const json = JSON.parse(r.stdout || "{}") as {
    error?: string;
    end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } };
  };
  if (r.exitCode !== 0 || json.error || !json.end?.sum_received)
    throw new Error(`iperf3 from ${ns} failed: ${json.error ?? r.stderr.trim()}`);
  return { bitsPerSecond: json.end.sum_received.bits_per_second, retransmits: json.end.sum_sent?.retransmits ?? 0 };
}

/** Asks the push server for one line after `idleSeconds`, and returns what arrived (or "" on timeout). */
export async function awaitPush(ns: string, idleSeconds: number, host = INET_IP): Promise<string> {
  const script = `exec 3<>/dev/tcp/${host}/${PUSH_PORT}; echo ${idleSeconds} >&3; timeout ${idleSeconds + 5} head -n 1 <&3`;
  const r = await run([...execIn(ns), "bash", "-c", script], { allowFailure: true });
  return r.stdout.trim();
}

/** Connects from `ns` to the echo server; returns the source address the internet host saw. */
export async function sourceSeenBy(ns: string, host = INET_IP, timeoutS = 5): Promise<string> {
  const r = await run(
    [...execIn(ns), "timeout", String(timeoutS), "bash", "-c", `exec 3<>/dev/tcp/${host}/${ECHO_PORT}; cat <&3`],
    { allowFailure: true },
  );
  if (r.exitCode !== 0)
    throw new Error(`no answer from ${host}:${ECHO_PORT} in ${ns} (exit ${r.exitCode}): ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** Sends `bytes` from `ns` to the internet host's sink over one TCP connection. */
export async function upload(ns: string, bytes: number, host = INET_IP): Promise<void> {
  const script = `exec 3<>/dev/tcp/${host}/${SINK_PORT}; head -c ${bytes} /dev/zero >&3`;
  const r = await run([...execIn(ns), "timeout", "20", "bash", "-c", script], { allowFailure: true });
  if (r.exitCode !== 0) throw new Error(`upload from ${ns} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
}

export interface RttStats {
  /** Round-trip times in ms, in the order measured; lost probes are missing. */
  samples: number[];
  sent: number;
}

/** Pings `host` from `ns` `count` times, `intervalS` apart, and collects the round-trip times. */
export async function rtt(ns: string, host: string, count: number, intervalS = 0.2): Promise<RttStats> {
  const r = await run([...execIn(ns), "ping", "-n", "-c", String(count), "-i", String(intervalS), "-W", "2", host], {
    allowFailure: true,
  });
  const samples = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  return { samples, sent: count };
}

export function percentile(values: readonly number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function ping(ns: string, host: string, count = 1): Promise<boolean> {
  const r = await run([...execIn(ns), "ping", "-c", String(count), "-W", "2", "-i", "0.2", host], {
    allowFailure: true,
  });
  return r.exitCode === 0;
}

export interface Capture {
  /** Stops the capture and returns the packets it saw, one line each. */
  stop(): Promise<string[]>;
}

/** Captures on `dev` inside `ns` with a pcap filter; resolves once tcpdump is listening. */
export async function capture(ns: string, dev: string, filter: string, verbose = false): Promise<Capture> {
  const bg = startIn(ns, ["tcpdump", "-n", "-l", "-U", ...(verbose ? ["-v"] : []), "-i", dev, filter]);
  // tcpdump says "listening on <dev>" on stderr once its capture is attached and filtered:
  // only then is the first packet of what is measured sure to be seen.
  await bg.stderrMatches(/listening on /);
  return {
    async stop() {
      await sleep(300);
      const out = await bg.stop();
      return out.split("\n").filter((l) => l.trim() !== "");
    },
  };
}

export interface HttpReply {
  status: number;
  body: string;
}

/** GET `url` from inside `ns` with curl (the test process itself lives in the root namespace, which has no route into the lab). */
export async function httpGet(ns: string, url: string, timeoutS = 10): Promise<HttpReply> {
  const r = await run(["ip", "netns", "exec", ns, "curl", "-sS", "-m", String(timeoutS), "-w", "\n%{http_code}", url], {
    allowFailure: true,
  });
  if (r.exitCode !== 0) throw new Error(`GET ${url} from ${ns} failed (curl exit ${r.exitCode}): ${r.stderr.trim()}`);
  const cut = r.stdout.lastIndexOf("\n");
  return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut) };
}
