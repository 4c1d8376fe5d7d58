/**
 * The daemon's HTTP side, on --listen: /healthz (the process is alive and serving) and /readyz
 * (the last reconcile succeeded and the file as it is now is the one in force). It only reads
 * the daemon's state; it never triggers a reconcile.
 */
import { createServer } from "node:http";
import type { GatewayDaemon } from "./daemon.js";

export interface HttpServer {
  /** The address actually bound ("127.0.0.1:9464"; port 0 picks one). */
  address: string;
  close(): Promise<void>;
}

/** "ADDR:PORT" or ":PORT" → host and port; undefined when it is neither. */
export function parseListen(listen: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(listen);
  const port = Number(m?.[3]);
  if (!m || port > 65535) return undefined;
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

export function startHttp(daemon: GatewayDaemon, listen: string): Promise<HttpServer> {
  const where = parseListen(listen);
  if (!where) return Promise.reject(new Error(`--listen takes ADDR:PORT (like 0.0.0.0:9464), not "${listen}"`));
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const reply = (code: number, body: string) => res.writeHead(code, { "content-type": "text/plain; charset=utf-8" }).end(body);
    if (path === "/healthz") return reply(200, "ok\n");
    if (path === "/readyz") {
      const r = daemon.readiness();
      return reply(r.ready ? 200 : 503, `${r.ready ? "ready" : "not ready"}: ${r.reason}\n`);
    }
    reply(404, "not found\n");
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(where.port, where.host, () => {
      const a = server.address();
      const address = typeof a === "object" && a ? `${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}` : listen;
      resolve({ address, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}
