/**
 * The gateway's HTTP side, mounted by whatever keeps the gateway reconciled (`run`, `serve`):
 *   /metrics     Prometheus exposition (metrics.ts), read from the kernel at scrape time
 *   /healthz     the process is alive and answering (liveness)
 *   /readyz      the last reconcile succeeded and the kernel matches the file (readiness; the source decides)
 *   /api/status  JSON: per tenant and direction, rate, ceil, counters and the achieved bits/s
 *   /            a page drawing /api/status (page.ts)
 * Plain node:http: five GET routes do not need a framework. Achieved rates need two samples;
 * they are measured against an earlier request's sample at least a second old, so a page
 * refreshing every second costs one kernel reading per refresh; a first request waits a second
 * for its second sampler, and requests closer together than 250 ms share one answer.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { between, type GatewaySample, type GatewayStatus, sampler } from "./commands.js";
import type { HaStatus } from "./ha/controller.js";
import { createMetrics, type ReconcileSource, sharedInFlight } from "./metrics.js";
import { pageHtml } from "./page.js";

export interface ApiStatus extends GatewayStatus {
  generation: number;
  configError: string | null;
  lastSuccess: string | null;
  /** The pair's side; null for a gateway that is no pair. */
  ha: HaStatus | null;
}

export interface Listen {
  host: string;
  port: number;
}

/** Parses "ADDR:PORT" ("10.23.0.2:9464", "[::]:9464", ":9464" for every IPv4 address; port 0 picks a free one). */
export function parseListen(text: string): Listen {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new Error(`--listen takes ADDR:PORT (like 0.0.0.0:9464 or [::]:9464), not "${text}"`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

/** A status younger than this is served again as it is (requests closer together share one reading). */
const REUSE_NS = 250_000_000n;
/** Achieved rates are "now": measured over at least a second, against a sample at most three seconds old. */
const MIN_BASE_NS = 1_000_000_000n;
const MAX_BASE_NS = 3_000_000_000n;

function statusTracker(read: () => Promise<GatewaySample>): () => Promise<GatewayStatus> {
  let history: GatewaySample[] = [];
  let last: { at: bigint; status: GatewayStatus } | undefined;
  return sharedInFlight(async () => {
    if (last && process.hrtime.bigint() - last.at < REUSE_NS) return last.status;
    let now = await read();
    history = history.filter((h) => now.at - h.at <= MAX_BASE_NS);
    let base = [...history].reverse().find((h) => now.at - h.at >= MIN_BASE_NS);
    if (!base) {
      base = now;
      await sleep(Number(MIN_BASE_NS / 1_000_000n));
      now = await read();
    }
    history.push(now);
    last = { at: process.hrtime.bigint(), status: between(base, now) };
    return last.status;
  });
}

export interface HttpServer {
  /** Where it listens, as "ADDR:PORT" (the port actually bound). */
  address: string;
  close(): Promise<void>;
}

export async function startHttp(source: ReconcileSource, listen: string): Promise<HttpServer> {
  const { host, port } = parseListen(listen);
  const read = sampler(source.netns, source.reading);
  const metrics = createMetrics(source, read);
  const current = statusTracker(read);
  const apiStatus = async (): Promise<ApiStatus> => ({
    ...(await current()),
    generation: source.generation,
    configError: source.configError ?? null,
    lastSuccess: source.lastSuccess?.toISOString() ?? null,
    ha: source.ha ?? null,
  });

  const send = (res: ServerResponse, code: number, type: string, body: string) => {
    res.writeHead(code, { "content-type": type, "cache-control": "no-store" });
    res.end(body);
  };
  const routes: Record<string, (res: ServerResponse) => Promise<void>> = {
    "/metrics": async (res) => send(res, 200, metrics.registry.contentType, await metrics.render()),
    "/healthz": async (res) => send(res, 200, "text/plain; charset=utf-8", "ok\n"),
    "/readyz": async (res) => {
      const r = await source.readiness();
      send(res, r.ready ? 200 : 503, "text/plain; charset=utf-8", `${r.ready ? "ready" : "not ready"}: ${r.reason}\n`);
    },
    "/api/status": async (res) => send(res, 200, "application/json", `${JSON.stringify(await apiStatus())}\n`),
    "/": async (res) => send(res, 200, "text/html; charset=utf-8", pageHtml(await apiStatus())),
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", "http://gateway").pathname;
    const route = routes[path];
    if (!route)
      return send(
        res,
        404,
        "text/plain; charset=utf-8",
        `no such page: ${path} (try /, /metrics, /healthz, /readyz, /api/status)\n`,
      );
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "text/plain; charset=utf-8", "only GET\n");
    try {
      await route(res);
    } catch (e) {
      // Reading the kernel failed (a tool missing, the namespace gone): say so, stay up.
      send(res, 500, "text/plain; charset=utf-8", `cannot read the gateway's state: ${(e as Error).message}\n`);
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address();
  return {
    address:
      typeof bound === "object" && bound
        ? `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`
        : listen,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeAllConnections();
      }),
  };
}
