/**
 * The gateway's HTTP side in the lab, as an operator meets it: `tenant-egress-gateway serve`
 * runs inside the gateway's namespace listening on its lab address, and everything that reads
 * it does so from another lab host on node-b (10.23.0.3, "mon"): curl, promtool, a real
 * Prometheus server scraping every second, and headless Chromium loading the page. Pods are
 * attached through the real CNI chain and send through the real tunnel, so the counters the
 * metrics show are the ones the kernel keeps while it shapes.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cni, distDir, writeBridgeConflist } from "../../src/lab/cni-client.js";
import { gatewayCli } from "../../src/lab/gateway-cli.js";
import { type Background, startIn } from "../../src/lab/process.js";
import { createLab, INET_IP, type Lab, uniquePrefix } from "../../src/lab/topology.js";
import { httpGet, ping, startInetServers } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";

let lab: Lab;
let servers: Background | undefined;
let serve: Background | undefined;
let prometheus: Background | undefined;
let gw: { ns: string; ip: string };
let mon: { ns: string; ip: string };
let configFile: string;
const pods: Record<string, string> = {};
const PORT = 9464;
const PROM_PORT = 9090;

const tenant = (name: string, vni: number, third: number, up: string, upCeil: string, down: string) => ({
  name,
  vni,
  overlaySubnet: `172.${third}.0.0/24`,
  allowedSources: ["10.22.0.0/24"],
  upload: { rate: up, ceil: upCeil },
  download: { rate: down },
});
const config = { linkRate: "100mbit", tenants: [tenant("acme", 500, 40, "20mbit", "20mbit", "40mbit"), tenant("globex", 600, 41, "5mbit", "10mbit", "10mbit")] };

const url = (path: string, port = PORT) => `http://${gw.ip}:${port}${path}`;
const get = (path: string, port = PORT) => httpGet(mon.ns, url(path, port));

/** Polls `probe` until it returns true; the loop is bounded so a broken server fails the test, not the suite. */
async function until(what: string, probe: () => Promise<boolean>, seconds = 20): Promise<void> {
  for (let i = 0; i < seconds * 5; i++) {
    if (await probe().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function startServe(args: string[]): Background {
  return startIn(gw.ns, [join(distDir(), "tenant-egress-gateway"), "serve", ...args]);
}

beforeAll(async () => {
  lab = await createLab(uniquePrefix("h"));
  servers = await startInetServers(lab.ns.inet);
  gw = await lab.addGateway("gw", 2);
  mon = await lab.addGateway("mon", 3);
  configFile = join(lab.dir, "gateway.json");
  await writeFile(configFile, JSON.stringify(config));
  serve = startServe(["--listen", `${gw.ip}:${PORT}`, "-f", configFile]);
  await until("serve to apply and be ready", async () => (await get("/readyz")).status === 200);
  const net = await writeBridgeConflist({
    name: `${lab.prefix}-net`,
    dir: lab.dir,
    egress: { tenants: { acme: { gateway: gw.ip, vni: 500, overlaySubnet: "172.40.0.0/24" }, globex: { gateway: gw.ip, vni: 600, overlaySubnet: "172.41.0.0/24" } } },
  });
  for (const t of ["acme", "globex"]) {
    pods[t] = await lab.addPodNamespace(t);
    await cni("add", { node: lab.ns.nodeA, network: net, pod: pods[t]!, cniArgs: `IgnoreUnknown=1;EGRESS_TENANT=${t}` });
  }
});

afterAll(async () => {
  await prometheus?.stop();
  await serve?.stop();
  await servers?.stop();
  await lab?.teardown();
});

/** The value of one series in exposition text, or undefined. */
function seriesValue(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("tenant-egress-gateway serve", () => {
  it("answers /healthz, and /readyz once the file is applied", async () => {
    expect(await get("/healthz")).toEqual({ status: 200, body: "ok\n" });
    const ready = await get("/readyz");
    expect(ready.status).toBe(200);
    expect(ready.body).toMatch(/^ready: the kernel matches the configuration \(generation 1\)/);
  });

  it("serves metrics that promtool accepts, per tenant and direction, from the kernel", async () => {
    expect(await ping(pods.acme!, INET_IP, 3)).toBe(true);
    const m = await get("/metrics");
    expect(m.status).toBe(200);
    const check = await run(["promtool", "check", "metrics"], { input: m.body, allowFailure: true });
    expect(check.stdout + check.stderr).toBe("");
    expect(check.exitCode).toBe(0);
    for (const t of ["acme", "globex"]) {
      for (const dir of ["upload", "download"]) {
        for (const name of ["bytes_total", "packets_total", "dropped_packets_total", "overlimits_total", "rate_bytes_per_second", "ceil_bytes_per_second", "backlog_bytes", "backlog_packets"]) {
          expect(seriesValue(m.body, `tenant_egress_${name}{tenant="${t}",direction="${dir}"}`), `${name} ${t} ${dir}`).toBeGreaterThanOrEqual(0);
        }
      }
    }
    expect(seriesValue(m.body, 'tenant_egress_rate_bytes_per_second{tenant="acme",direction="upload"}')).toBe(20e6 / 8);
    expect(seriesValue(m.body, 'tenant_egress_ceil_bytes_per_second{tenant="globex",direction="upload"}')).toBe(10e6 / 8);
    expect(seriesValue(m.body, 'tenant_egress_packets_total{tenant="acme",direction="upload"}')).toBeGreaterThanOrEqual(3);
    expect(seriesValue(m.body, 'tenant_egress_pods_learned{tenant="acme"}')).toBe(1);
    expect(seriesValue(m.body, 'tenant_egress_neighbours{tenant="acme"}')).toBeGreaterThanOrEqual(1);
    expect(seriesValue(m.body, "tenant_egress_unclassified_packets_total")).toBe(0);
    expect(seriesValue(m.body, "tenant_egress_config_generation")).toBe(1);
    expect(seriesValue(m.body, "tenant_egress_config_error")).toBe(0);
    expect(seriesValue(m.body, 'tenant_egress_reconciles_total{result="changed"}')).toBe(1);
    expect(seriesValue(m.body, 'tenant_egress_reconciles_total{result="failed"}')).toBe(0);
    expect(seriesValue(m.body, "tenant_egress_reconcile_duration_seconds_count")).toBe(1);
    expect(Date.now() / 1000 - seriesValue(m.body, "tenant_egress_last_successful_reconcile_timestamp_seconds")!).toBeLessThan(600);
  });

  it("reports achieved rates as JSON at /api/status", async () => {
    const s = await get("/api/status");
    expect(s.status).toBe(200);
    const body = JSON.parse(s.body) as { generation: number; configError: null; tenants: Array<{ name: string; upload: { rate: number; ceil: number; achieved: number }; download: { rate: number } }> };
    expect(body.generation).toBe(1);
    expect(body.configError).toBeNull();
    expect(body.tenants.map((t) => t.name).sort()).toEqual(["acme", "globex"]);
    const globex = body.tenants.find((t) => t.name === "globex")!;
    expect(globex.upload).toMatchObject({ rate: 5e6, ceil: 10e6 });
    expect(globex.upload.achieved).toBeGreaterThanOrEqual(0);
  });
});
