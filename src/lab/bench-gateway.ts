/**
 * Benchmarks of the gateway's promise: a limit means what it says. For 10 Mbit/s, 100 Mbit/s and
 * 1 Gbit/s, upload and download, 1 and 4 TCP streams: goodput against the configured rate and
 * against the theoretical goodput at that rate (what TCP can carry once headers are counted),
 * the largest 1-second window against the rate, and ping RTT under full load. The same pods are
 * dual stack, so the 10 and 100 Mbit/s tenants also measure IPv6 (1 stream each way): its own
 * limit, the same class. Then two tenants guaranteed 3 and 7 Mbit/s on a 10 Mbit/s link, both
 * saturating.
 */

import { run } from "../net/run.js";
import { writeBridgeConflist } from "./cni-client.js";
import { applyGateway } from "./gateway-cli.js";
import { attachTenantPods, type LabTenant, labTenant, pluginTenants } from "./tenants.js";
import type { Lab } from "./topology.js";
import { INET_IP, INET6_IP, POD6_SUBNET } from "./topology.js";
import { percentile, rtt } from "./traffic.js";

/**
 * What TCP can carry of a rate: payload per full-size segment over the bytes HTB counts for it.
 * On the tunnel's MTU 1450 a segment's packet is 1450 bytes and HTB counts it with its Ethernet
 * header (14): 1464. Payload = 1450 − IP header − TCP 20 − timestamps 12, so IPv4 (20) carries
 * 1398 (MSS 1410) and IPv6 (40) 1378 (MSS 1390, the plugin's clamp).
 */
const FRAME = 1450 + 14;
export const THEORETICAL_RATIO = (1450 - 20 - 20 - 12) / FRAME;
export const THEORETICAL_RATIO6 = (1450 - 40 - 20 - 12) / FRAME;

export interface RateRow {
  rate: number;
  /** Absent in runs from before IPv6 was measured: 4. */
  family?: 4 | 6;
  direction: "upload" | "download";
  streams: number;
  goodput: number;
  ofRate: number;
  ofTheoretical: number;
  maxWindowOfRate: number;
  rttIdleP50: number;
  rttLoadedP50: number;
  rttLoadedP99: number;
}

export interface IsolationRow {
  tenant: string;
  rate: number;
  goodput: number;
  ofTheoretical: number;
  /** Goodput per second, for the chart. */
  series: number[];
}

export interface GatewayBench {
  seconds: number;
  rates: RateRow[];
  isolation: IsolationRow[];
}

interface IperfJson {
  error?: string;
  intervals?: Array<{ sum: { bits_per_second: number; omitted?: boolean } }>;
  end?: { sum_received?: { bits_per_second: number } };
}

async function iperfSeries(
  ns: string,
  port: number,
  seconds: number,
  streams: number,
  reverse: boolean,
  host = INET_IP,
) {
  const args = [
    "iperf3",
    "-c",
    host,
    "-p",
    String(port),
    "-t",
    String(seconds),
    "-O",
    "1",
    "-J",
    "-P",
    String(streams),
    ...(reverse ? ["-R"] : []),
  ];
  const r = await run(["ip", "netns", "exec", ns, "timeout", String(seconds + 20), ...args], { allowFailure: true });
  const j = JSON.parse(r.stdout || "{}") as IperfJson;
  if (!j.end?.sum_received) throw new Error(`iperf3 from ${ns} failed: ${j.error ?? r.stderr.trim()}`);
  const series = (j.intervals ?? []).filter((i) => !i.sum.omitted).map((i) => i.sum.bits_per_second);
  return { goodput: j.end.sum_received.bits_per_second, series };
}

/** A tenant on overlay 172.<third>.0.0/24, its ceiling (if any) the same both ways. */
const tenant = (name: string, vni: number, third: number, up: string, down = up, ceil?: string) =>
  labTenant(name, vni, `172.${third}.0.0/24`, {
    upload: { rate: up, ...(ceil ? { ceil } : {}) },
    download: { rate: down, ...(ceil ? { ceil } : {}) },
  });

async function attach(
  lab: Lab,
  gw: { ns: string; ip: string },
  tenants: LabTenant[],
  tag: string,
  dualStack = false,
): Promise<Record<string, string>> {
  const network = await writeBridgeConflist({
    name: `${lab.prefix}-${tag}`,
    dir: lab.dir,
    ...(dualStack ? { ipv6Subnet: POD6_SUBNET } : {}),
    egress: { tenants: pluginTenants(gw.ip, tenants) },
  });
  return attachTenantPods(lab, network, tenants, tag);
}

export async function benchGateway(lab: Lab, seconds: number, progress: (s: string) => void): Promise<GatewayBench> {
  const gw = await lab.addGateway("bench-gw", 3);
  // The last one shapes nothing this machine can reach: it measures what the path itself carries
  // (VXLAN, NAT, HTB, two CPUs), so the 1 Gbit/s rows can be read against it.
  const rates = [
    { name: "r10", vni: 10, third: 20, rate: 10e6, text: "10mbit" },
    { name: "r100", vni: 100, third: 21, rate: 100e6, text: "100mbit" },
    { name: "r1000", vni: 1000, third: 22, rate: 1e9, text: "1gbit" },
    { name: "path", vni: 9999, third: 25, rate: 20e9, text: "20gbit" },
  ];
  const tenants = rates.map((r) => tenant(r.name, r.vni, r.third, r.text));
  await applyGateway(gw.ns, lab.dir, { linkRate: "25gbit", tenants });
  const pods = await attach(lab, gw, tenants, "rate", true);
  const rows: RateRow[] = [];
  const measure = async (r: (typeof rates)[number], family: 4 | 6, streamCounts: number[]) => {
    const ns = pods[r.name]!;
    const host = family === 6 ? INET6_IP : INET_IP;
    const idle = await rtt(ns, host, 10, 0.1);
    for (const direction of ["upload", "download"] as const) {
      for (const streams of streamCounts) {
        progress(
          `${r.text} IPv${family} ${direction}, ${streams} stream${streams > 1 ? "s" : ""}: ${seconds} s of iperf3 with ping alongside`,
        );
        const [res, loaded] = await Promise.all([
          iperfSeries(ns, 5201, seconds, streams, direction === "download", host),
          (async () => {
            await new Promise((ok) => setTimeout(ok, 1500));
            return rtt(ns, host, Math.max(5, (seconds - 2) * 10), 0.1);
          })(),
        ]);
        rows.push({
          rate: r.rate,
          family,
          direction,
          streams,
          goodput: res.goodput,
          ofRate: res.goodput / r.rate,
          ofTheoretical: res.goodput / (r.rate * (family === 6 ? THEORETICAL_RATIO6 : THEORETICAL_RATIO)),
          maxWindowOfRate: Math.max(...res.series) / r.rate,
          rttIdleP50: percentile(idle.samples, 50),
          rttLoadedP50: percentile(loaded.samples, 50),
          rttLoadedP99: percentile(loaded.samples, 99),
        });
      }
    }
  };
  for (const r of rates) await measure(r, 4, [1, 4]);
  for (const r of rates.filter((x) => x.rate <= 100e6)) await measure(r, 6, [1]);

  progress(`two tenants guaranteed 3 and 7 Mbit/s on a 10 Mbit/s link, both saturating for ${seconds * 2} s`);
  const gw2 = await lab.addGateway("iso-gw", 4);
  const pair = [tenant("three", 3, 23, "3mbit", "3mbit", "10mbit"), tenant("seven", 7, 24, "7mbit", "7mbit", "10mbit")];
  await applyGateway(gw2.ns, lab.dir, { linkRate: "10mbit", tenants: pair });
  const isoPods = await attach(lab, gw2, pair, "iso");
  const [a, b] = await Promise.all([
    iperfSeries(isoPods.three!, 5202, seconds * 2, 1, false),
    iperfSeries(isoPods.seven!, 5203, seconds * 2, 1, false),
  ]);
  const isolation: IsolationRow[] = [
    {
      tenant: "three",
      rate: 3e6,
      goodput: a.goodput,
      ofTheoretical: a.goodput / (3e6 * THEORETICAL_RATIO),
      series: a.series,
    },
    {
      tenant: "seven",
      rate: 7e6,
      goodput: b.goodput,
      ofTheoretical: b.goodput / (7e6 * THEORETICAL_RATIO),
      series: b.series,
    },
  ];
  return { seconds, rates: rows, isolation };
}
