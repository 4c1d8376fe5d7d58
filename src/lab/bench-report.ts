/**
 * Writes a benchmark run as JSON (every number), Markdown (the tables the README quotes) and
 * an SVG chart (goodput per second of each tenant against its guaranteed rate).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { formatRate } from "../net/rates.js";
import { type GatewayBench, type IsolationRow, THEORETICAL_RATIO, THEORETICAL_RATIO6 } from "./bench-gateway.js";
import type { ScaleBench } from "./bench-gateway-scale.js";
import type { PluginBench, Ratio, Timing } from "./bench-plugin.js";

export interface BenchRun {
  date: string;
  machine: { cpus: number; kernel: string; node: string };
  plugin?: PluginBench;
  gateway?: GatewayBench;
  gatewayScale?: ScaleBench;
}

const ms = (t: Timing | undefined) => (t ? `${t.median.toFixed(1)} / ${t.p90.toFixed(1)}` : "-");
/** The plugin benchmark's floors besides `node -e 0`, as their rows name them. */
const FLOORS: Record<string, string> = {
  "empty single executable": "floor: an empty single executable (Node 24's start-up)",
  "one session in the pod": "floor: a single executable that reads the pod in one session (ip, iptables-save)",
};
const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

export function markdown(r: BenchRun): string {
  const out: string[] = [
    `# tenant-egress benchmark, ${r.date}`,
    "",
    `${r.machine.cpus} CPUs, kernel ${r.machine.kernel}, Node ${r.machine.node}. Reproduce: \`npm run bench\`.`,
    "",
  ];
  if (r.plugin) {
    const p = r.plugin;
    out.push(
      "## Plugin verbs: ratio to `node -e 0` (median / p90 of each sample over its own round's floor), then ms (median / p90)",
      "",
      "Invoked like libcni from the node namespace through nsenter, interleaved, `node -e 0` sampled in every round.",
      "",
    );
    const x = (r: Ratio | undefined) => (r ? `${r.median.toFixed(2)} / ${r.p90.toFixed(2)} ×` : "");
    out.push(
      "| plugin | ADD ÷ node -e 0 | CHECK ÷ node -e 0 | DEL ÷ node -e 0 | start-up (VERSION) | ADD | CHECK | DEL |",
      "|---|---|---|---|---|---|---|---|",
    );
    for (const [name, v] of Object.entries(p.verbs)) {
      const r = p.ratios[name] ?? {};
      out.push(
        name === "node -e 0"
          ? `| node -e 0 (start-up floor) | 1 | | | ${ms(v.start)} | | | |`
          : name in FLOORS
            ? `| ${FLOORS[name]} | ${x(r.start)} | | | ${ms(v.start)} | | | |`
            : `| ${name} | ${x(r.ADD)} | ${x(r.CHECK)} | ${x(r.DEL)} | ${ms(v.VERSION)} | ${ms(v.ADD)} | ${ms(v.CHECK)} | ${ms(v.DEL)} |`,
      );
    }
    out.push(
      `| nsenter + true (spawn floor) | | | | ${ms(p.nsenterFloor)} | | | |`,
      "",
      `n = ${p.nsenterFloor.n} per cell. A floor's ratio, in the ADD column, is its whole run over \`node -e 0\`.`,
      "",
    );
    out.push(
      "## Where an ADD's time goes (the plugin's own trace, `TENANT_EGRESS_TRACE=1`; median ms since its process started)",
      "",
      "| mark | ms |",
      "|---|---|",
      ...p.addPhases.marks.map((m) => `| ${m.what} | ${m.ms.toFixed(1)} |`),
      "",
      `Starting a process holds the plugin's only thread (a fork of the whole process): ${p.addPhases.spawns.map((x) => `${x.what} ${x.ms.toFixed(1)} ms`).join("; ")}.`,
      "",
    );
    const growth = (a: Timing, b: Timing) => `${b.median >= a.median ? "+" : ""}${pct(b.median / a.median - 1)}`;
    out.push(
      "## Scale",
      "",
      `- tenant-egress ADD ÷ node -e 0 with 1 pod on the node: ${x(p.ratioWith1)}; with 200 pods: ${x(p.ratioWith200)}. With \`enforce: true\` (the 200 pods enforced too): ${x(p.enforceRatioWith1)}, then ${x(p.enforceRatioWith200)}.`,
      `- tenant-egress ADD with 1 pod on the node: ${ms(p.addWith1)} ms; with 200 pods: ${ms(p.addWith200)} ms (median ${growth(p.addWith1, p.addWith200)}; n = ${p.addWith1.n} each).`,
      `- \`node -e 0\` sampled alongside: ${ms(p.floorWith1)} ms, then ${ms(p.floorWith200)} ms (${growth(p.floorWith1, p.floorWith200)}): how much the machine itself slowed down with 200 pods up.`,
    );
    const q = p.parallel;
    out.push(
      `- ${q.pods} parallel ADDs through bridge + host-local + tenant-egress: ${q.addWallMs} ms wall, ${q.addFailures} failed; ${q.pods} parallel DELs: ${q.delWallMs} ms wall, ${q.delFailures} failed; leftovers: ${q.leftovers.length ? q.leftovers.join("; ") : "none"}.`,
      "",
    );
  }
  if (r.gateway) {
    const g = r.gateway;
    out.push(
      `## Gateway shaping (iperf3 TCP, ${g.seconds} s per row; theoretical = rate × ${pct(THEORETICAL_RATIO)} for IPv4, × ${pct(THEORETICAL_RATIO6)} for IPv6, the TCP goodput of a full-size segment in the tunnel)`,
      "",
    );
    out.push(
      "| rate | direction | streams | goodput | of rate | of theoretical | max 1 s window / rate | RTT idle p50 | RTT loaded p50 / p99 |",
      "|---|---|---|---|---|---|---|---|---|",
    );
    for (const x of g.rates) {
      if (x.rate >= 20e9) {
        out.push(
          `| unshaped path (class at ${formatRate(x.rate)}) | ${x.direction} | ${x.streams} | ${formatRate(x.goodput)} | | | | ${x.rttIdleP50.toFixed(2)} ms | ${x.rttLoadedP50.toFixed(1)} / ${x.rttLoadedP99.toFixed(1)} ms |`,
        );
        continue;
      }
      out.push(
        `| ${formatRate(x.rate)}${x.family === 6 ? " IPv6" : ""} | ${x.direction} | ${x.streams} | ${formatRate(x.goodput)} | ${pct(x.ofRate)} | ${pct(x.ofTheoretical)} | ${pct(x.maxWindowOfRate)} | ${x.rttIdleP50.toFixed(2)} ms | ${x.rttLoadedP50.toFixed(1)} / ${x.rttLoadedP99.toFixed(1)} ms |`,
      );
    }
    out.push(
      "",
      "## Two tenants, 3 + 7 Mbit/s guaranteed on a 10 Mbit/s link, both saturating (upload)",
      "",
      "| tenant | guaranteed | goodput | of theoretical |",
      "|---|---|---|---|",
    );
    for (const x of g.isolation)
      out.push(`| ${x.tenant} | ${formatRate(x.rate)} | ${formatRate(x.goodput)} | ${pct(x.ofTheoretical)} |`);
    out.push("", "![goodput per second of each tenant against its rate](isolation.svg)", "");
  }
  if (r.gatewayScale) {
    const g = r.gatewayScale;
    const n = (x: number | undefined, digits = 0) => (x === undefined ? "" : x.toFixed(digits));
    out.push(
      `## Gateway at scale (\`run\` daemon; tenants with /16 overlays; pods sending real VXLAN from 20 VTEPs; targets: first apply ≤ 2000 ms, no-op reconcile ≤ 200 ms, RSS ≤ 100 MB, metrics scrape ≤ 100 ms)`,
      "",
      "| tenants | pods | first apply (ms) | all pods learned (ms) | no-op reconcile (ms, median of 5) | daemon RSS (MB) | live heap (MB) | /metrics scrape (ms, median of 5) | neighbour entries |",
      "|---|---|---|---|---|---|---|---|---|",
    );
    for (const x of g.rows)
      out.push(
        `| ${x.tenants} | ${x.pods} | ${n(x.firstApplyMs)} | ${n(x.learnMs)} | ${n(x.noopMs)} | ${n(x.rssMB, 1)} | ${n(x.heapMB, 1)} | ${n(x.scrapeMs)} | ${x.neighbours} |`,
      );
    out.push("");
  }
  return out.join("\n");
}

/** A line chart: goodput per second per tenant (solid) against its guaranteed rate (dashed). */
export function isolationSvg(rows: IsolationRow[]): string {
  const w = 640;
  const h = 320;
  const pad = { l: 60, r: 120, t: 30, b: 40 };
  const maxY = Math.max(...rows.flatMap((r) => [...r.series, r.rate])) * 1.15;
  const n = Math.max(...rows.map((r) => r.series.length));
  const x = (i: number) => pad.l + ((w - pad.l - pad.r) * i) / Math.max(1, n - 1);
  const y = (v: number) => h - pad.b - ((h - pad.t - pad.b) * v) / maxY;
  const colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<text x="${pad.l}" y="18">Goodput per second vs guaranteed rate (two tenants on a 10 Mbit/s link)</text>`,
    `<line x1="${pad.l}" y1="${h - pad.b}" x2="${w - pad.r}" y2="${h - pad.b}" stroke="black"/>`,
    `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${h - pad.b}" stroke="black"/>`,
    `<text x="${(w - pad.r + pad.l) / 2}" y="${h - 8}" text-anchor="middle">seconds</text>`,
  ];
  for (let v = 0; v <= maxY; v += 2e6)
    parts.push(
      `<text x="${pad.l - 6}" y="${y(v) + 4}" text-anchor="end">${v / 1e6}M</text>`,
      `<line x1="${pad.l}" x2="${w - pad.r}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`,
    );
  rows.forEach((r, k) => {
    const c = colors[k % colors.length]!;
    parts.push(
      `<polyline fill="none" stroke="${c}" stroke-width="2" points="${r.series.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ")}"/>`,
    );
    parts.push(
      `<line x1="${pad.l}" x2="${w - pad.r}" y1="${y(r.rate)}" y2="${y(r.rate)}" stroke="${c}" stroke-dasharray="6 4"/>`,
    );
    parts.push(`<text x="${w - pad.r + 6}" y="${y(r.rate) + 4}" fill="${c}">${r.tenant}: ${formatRate(r.rate)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n");
}

export async function writeReport(dir: string, r: BenchRun): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files = [join(dir, `${r.date}.json`), join(dir, `${r.date}.md`)];
  await writeFile(files[0]!, `${JSON.stringify(r, null, 2)}\n`);
  await writeFile(files[1]!, `${markdown(r)}\n`);
  if (r.gateway) {
    files.push(join(dir, "isolation.svg"));
    await writeFile(files[2]!, isolationSvg(r.gateway.isolation));
  }
  return files;
}
