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

// A client that hangs up early (a readiness probe, a killed test) resets the socket: without an
// error handler that would crash the server for every later test.
const SERVERS = `
const net = require("net");
const serve = (port, handle) => net.createServer((s) => { s.on("error", () => {}); handle(s); }).listen(port);
serve(${ECHO_PORT}, (s) => s.end(s.remoteAddress.replace(/^::ffff:/, "") + "\\n"));
serve(${SINK_PORT}, (s) => { s.resume(); s.on("end", () => s.end()); });
console.log("ready");
`;

/** Starts the internet host's servers; resolves once they accept connections. */
export async function startInetServers(inetNs: string): Promise<Background> {
  const bg = startIn(inetNs, ["env", "-u", "NODE_OPTIONS", "-u", "NODE_EXTRA_CA_CERTS", "node", "-e", SERVERS]);
  for (let i = 0; i < 50; i++) {
    const r = await run(["ip", "netns", "exec", inetNs, "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${ECHO_PORT}`], { allowFailure: true });
    if (r.exitCode === 0) return bg;
    await sleep(100);
  }
  await bg.stop();
  throw new Error("the internet host's servers did not start");
}

/** Connects from `ns` to the echo server; returns the source address the internet host saw. */
export async function sourceSeenBy(ns: string, host = INET_IP, timeoutS = 5): Promise<string> {
  const r = await run(["ip", "netns", "exec", ns, "timeout", String(timeoutS), "bash", "-c", `exec 3<>/dev/tcp/${host}/${ECHO_PORT}; cat <&3`], { allowFailure: true });
  if (r.exitCode !== 0) throw new Error(`no answer from ${host}:${ECHO_PORT} in ${ns} (exit ${r.exitCode}): ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** Sends `bytes` from `ns` to the internet host's sink over one TCP connection. */
export async function upload(ns: string, bytes: number, host = INET_IP): Promise<void> {
  const script = `exec 3<>/dev/tcp/${host}/${SINK_PORT}; head -c ${bytes} /dev/zero >&3`;
  const r = await run(["ip", "netns", "exec", ns, "timeout", "20", "bash", "-c", script], { allowFailure: true });
  if (r.exitCode !== 0) throw new Error(`upload from ${ns} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
}

export async function ping(ns: string, host: string, count = 1): Promise<boolean> {
  const r = await run(["ip", "netns", "exec", ns, "ping", "-c", String(count), "-W", "2", "-i", "0.2", host], { allowFailure: true });
  return r.exitCode === 0;
}

export interface Capture {
  /** Stops the capture and returns the packets it saw, one line each. */
  stop(): Promise<string[]>;
}

/** Captures on `dev` inside `ns` with a pcap filter; resolves once tcpdump is listening. */
export async function capture(ns: string, dev: string, filter: string, verbose = false): Promise<Capture> {
  const bg = startIn(ns, ["tcpdump", "-n", "-l", "-U", ...(verbose ? ["-v"] : []), "-i", dev, filter]);
  // tcpdump needs a moment to attach; there is no readiness signal on stdout.
  await sleep(600);
  return {
    async stop() {
      await sleep(300);
      const out = await bg.stop();
      return out.split("\n").filter((l) => l.trim() !== "");
    },
  };
}

/** A counter from /proc/net/snmp (e.g. "Ip", "FragFails") inside `ns`. */
export async function snmpCounter(ns: string, group: string, name: string): Promise<number> {
  const r = await run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"]);
  const lines = r.stdout.split("\n").filter((l) => l.startsWith(`${group}:`));
  const [header, values] = [lines[0]?.split(/\s+/) ?? [], lines[1]?.split(/\s+/) ?? []];
  const i = header.indexOf(name);
  if (i < 0) throw new Error(`no ${group} ${name} in /proc/net/snmp`);
  return Number(values[i]);
}
