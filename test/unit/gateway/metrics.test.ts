import { describe, expect, it } from "vitest";
import { countPerTunnel, type DirectionSample, type GatewaySample } from "../../../src/gateway/commands.js";
import type { HaStatus } from "../../../src/gateway/ha/controller.js";
import { parseListen } from "../../../src/gateway/http.js";
import {
  createMetrics,
  type ReconcileEvent,
  type ReconcileSource,
  sharedInFlight,
} from "../../../src/gateway/metrics.js";
import { pageHtml, renderHa, renderTenants } from "../../../src/gateway/page.js";
import { run } from "../../../src/net/run.js";

const dir = (dev: string, rate: number, ceil: number, bytes: number): DirectionSample => ({
  classid: "7e:1f4",
  dev,
  rate,
  ceil,
  bytes,
  packets: bytes / 1000,
  drops: 2,
  overlimits: 7,
  backlogBytes: 3000,
  backlogPackets: 2,
});

const sampleOf = (tenants: string[], bytes = 1_000_000): GatewaySample => ({
  uplink: "eth0",
  at: 0n,
  directPackets: 0,
  tenants: tenants.map((name, i) => ({
    name,
    vni: 500 + i,
    upload: dir("eth0", 20e6, 30e6, bytes),
    download: dir(`tev${500 + i}`, 40e6, 40e6, bytes * 2),
    neighbours: 253,
    podsLearned: 3,
  })),
});

class Source implements ReconcileSource {
  ha: HaStatus | undefined = undefined;
  generation = 2;
  configError: string | undefined = undefined;
  lastSuccess: Date | undefined = new Date(1_700_000_000_000);
  listeners: Array<(e: ReconcileEvent) => void> = [];
  readiness() {
    return { ready: true, reason: "matches" };
  }
  onReconcile(l: (e: ReconcileEvent) => void) {
    this.listeners.push(l);
  }
  emit(e: Partial<ReconcileEvent>) {
    for (const l of this.listeners) l({ result: "changed", seconds: 0.03, at: new Date(), changes: [], ...e });
  }
}

const value = (text: string, series: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe("gateway metrics", () => {
  it("names every series per tenant and direction, in Prometheus' base units, and promtool accepts them", async () => {
    const text = await createMetrics(new Source(), async () => sampleOf(["acme", "globex"])).render();
    expect(value(text, 'tenant_egress_bytes_total{tenant="acme",direction="upload"}')).toBe(1_000_000);
    expect(value(text, 'tenant_egress_bytes_total{tenant="globex",direction="download"}')).toBe(2_000_000);
    expect(value(text, 'tenant_egress_packets_total{tenant="acme",direction="upload"}')).toBe(1000);
    expect(value(text, 'tenant_egress_dropped_packets_total{tenant="acme",direction="upload"}')).toBe(2);
    expect(value(text, 'tenant_egress_overlimits_total{tenant="acme",direction="download"}')).toBe(7);
    expect(value(text, 'tenant_egress_rate_bytes_per_second{tenant="acme",direction="upload"}')).toBe(2_500_000);
    expect(value(text, 'tenant_egress_ceil_bytes_per_second{tenant="acme",direction="upload"}')).toBe(3_750_000);
    expect(value(text, 'tenant_egress_backlog_bytes{tenant="acme",direction="upload"}')).toBe(3000);
    expect(value(text, 'tenant_egress_backlog_packets{tenant="acme",direction="upload"}')).toBe(2);
    expect(value(text, 'tenant_egress_neighbours{tenant="acme"}')).toBe(253);
    expect(value(text, 'tenant_egress_pods_learned{tenant="globex"}')).toBe(3);
    expect(value(text, "tenant_egress_unclassified_packets_total")).toBe(0);
    expect(value(text, "tenant_egress_config_generation")).toBe(2);
    expect(value(text, "tenant_egress_config_error")).toBe(0);
    expect(value(text, "tenant_egress_last_successful_reconcile_timestamp_seconds")).toBe(1_700_000_000);
    for (const result of ["changed", "unchanged", "invalid_config", "failed"])
      expect(value(text, `tenant_egress_reconciles_total{result="${result}"}`)).toBe(0);
    expect(text).toMatch(/# TYPE tenant_egress_bytes_total counter/);
    expect(text).toMatch(/# TYPE tenant_egress_rate_bytes_per_second gauge/);
    expect(text).toMatch(/# TYPE tenant_egress_reconcile_duration_seconds histogram/);
    const check = await run(["promtool", "check", "metrics"], { input: text, allowFailure: true });
    expect(check.stdout + check.stderr).toBe("");
    expect(check.exitCode).toBe(0);
  });

  it("counts reconciles by result and observes their duration", async () => {
    const source = new Source();
    const m = createMetrics(source, async () => sampleOf([]));
    source.emit({ result: "changed", seconds: 0.04 });
    source.emit({ result: "unchanged", seconds: 0.02 });
    source.emit({ result: "invalid_config", seconds: 0.001, error: "bad" });
    source.configError = "tenants[0].upload.ceil: 5mbit is below rate 10mbit";
    const text = await m.render();
    expect(value(text, 'tenant_egress_reconciles_total{result="changed"}')).toBe(1);
    expect(value(text, 'tenant_egress_reconciles_total{result="unchanged"}')).toBe(1);
    expect(value(text, 'tenant_egress_reconciles_total{result="invalid_config"}')).toBe(1);
    expect(value(text, 'tenant_egress_reconciles_total{result="failed"}')).toBe(0);
    expect(value(text, "tenant_egress_reconcile_duration_seconds_count")).toBe(3);
    expect(value(text, 'tenant_egress_reconcile_duration_seconds_bucket{le="0.025"}')).toBe(2);
    expect(value(text, "tenant_egress_config_error")).toBe(1);
  });

  it("reads the kernel once per scrape, shows its counters as they are, and drops a removed tenant", async () => {
    let reads = 0;
    let tenants = ["acme", "globex"];
    let bytes = 5000;
    const m = createMetrics(new Source(), async () => {
      reads++;
      return sampleOf(tenants, bytes);
    });
    await m.render();
    expect(reads).toBe(1);
    // A class rebuilt by hand restarts its counters: the metric shows the kernel's value (Prometheus handles the reset).
    tenants = ["acme"];
    bytes = 1000;
    const text = await m.render();
    expect(reads).toBe(2);
    expect(value(text, 'tenant_egress_bytes_total{tenant="acme",direction="upload"}')).toBe(1000);
    expect(text).not.toMatch(/globex/);
  });

  it("shares one in-flight call among concurrent callers", async () => {
    let calls = 0;
    const f = sharedInFlight(async () => ++calls);
    expect(await Promise.all([f(), f(), f()])).toEqual([1, 1, 1]);
    expect(await f()).toBe(2);
  });
});

describe("countPerTunnel", () => {
  it("counts neighbours per tunnel device, and only pod-learned FDB entries", () => {
    const neigh = [
      "172.40.0.2 dev tev500 lladdr 02:7e:ac:28:00:02 PERMANENT",
      "172.40.0.3 dev tev500 lladdr 02:7e:ac:28:00:03 PERMANENT",
      "10.23.0.1 dev eth0 lladdr 9a:1b:00:00:00:01 REACHABLE",
      "172.41.0.2 dev tev600 lladdr 02:7e:ac:29:00:02 PERMANENT",
    ].join("\n");
    expect([...countPerTunnel(neigh)]).toEqual([
      ["tev500", 2],
      ["tev600", 1],
    ]);
    const fdb = [
      "02:7e:ac:28:00:02 dev tev500 dst 10.22.0.2 self",
      "02:7e:ac:28:00:01 dev tev500 self permanent",
      "00:00:00:00:00:00 dev tev600 dst 10.22.0.9 self permanent",
      "33:33:00:00:00:01 dev eth0 self permanent",
    ].join("\n");
    expect([...countPerTunnel(fdb, true)]).toEqual([["tev500", 1]]);
  });
});

describe("parseListen", () => {
  it("takes ADDR:PORT for IPv4, [IPv6], names and :PORT", () => {
    expect(parseListen("10.23.0.2:9464")).toEqual({ host: "10.23.0.2", port: 9464 });
    expect(parseListen("[::]:9464")).toEqual({ host: "::", port: 9464 });
    expect(parseListen("localhost:80")).toEqual({ host: "localhost", port: 80 });
    expect(parseListen(":9464")).toEqual({ host: "0.0.0.0", port: 9464 });
    expect(parseListen("127.0.0.1:0")).toEqual({ host: "127.0.0.1", port: 0 });
    for (const bad of ["9464", "10.0.0.1:70000", "::9464", "a b:1", "10.0.0.1:"])
      expect(() => parseListen(bad), bad).toThrow(/ADDR:PORT/);
  });
});

/** What /api/status says of a gateway with no tenants and no HA, for the page's tests to add to. */
const emptyStatus = {
  uplink: "eth0",
  intervalSeconds: 1,
  directPackets: 0,
  generation: 1,
  configError: null,
  lastSuccess: null,
  ha: null,
  tenants: [],
};

describe("the page", () => {
  const status = {
    ...emptyStatus,
    tenants: [
      {
        name: "acme",
        vni: 500,
        neighbours: 253,
        podsLearned: 1,
        upload: { ...dir("eth0", 20e6, 40e6, 1), achieved: 10e6 },
      },
    ],
  };

  it("draws a bar per direction against rate and ceil, and says when a class is missing", () => {
    const svg = renderTenants(status);
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain('<g class="bar" data-tenant="acme" data-direction="upload">');
    // 10 of a 40 Mbit/s ceil is a quarter of the 400-pixel bar; the rate mark at half.
    expect(svg).toMatch(/width="100" height="12" fill="#2b6cb0" class="achieved"/);
    expect(svg).toContain('<line x1="310" x2="310"');
    expect(svg).toContain("10.0 Mbit/s</tspan> of rate 20.0 Mbit/s, ceil 40.0 Mbit/s");
    expect(svg).toMatch(/download<\/text><text [^>]*class="missing">class missing in the kernel/);
  });

  it("escapes what it shows and needs nothing from elsewhere", () => {
    const html = pageHtml({
      ...status,
      configError: "</script><img src=x>",
      tenants: [{ ...status.tenants[0]!, name: "a<b" }],
    });
    expect(html).not.toMatch(/<\/script><img/);
    expect(renderTenants({ ...status, tenants: [{ ...status.tenants[0]!, name: "a<b" }] })).toContain("a&#60;b");
    const plain = pageHtml(status);
    expect(plain).not.toMatch(/\b(src|href)=/);
    expect(plain).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
  });
});

const haStatus: HaStatus = {
  instance: "gw-b",
  peer: "gw-a",
  role: "active",
  vrrpState: "MASTER",
  since: "2026-12-01T10:00:00.000Z",
  transitions: 2,
  peerAdvert: { at: "2026-12-01T10:00:09.500Z", priority: 150 },
  sync: { healthy: true, reason: "ok" },
  replicatedConnections: 24,
  addresses: { moving: ["10.23.0.100", "198.51.100.1"], held: ["10.23.0.100", "198.51.100.1"] },
  podsMirrored: 0,
  children: {},
};

describe("the pair in metrics and on the page", () => {
  it("exports the role, the peer's advertisement, sync health and replicated connections per instance", async () => {
    const source = new Source();
    const m = createMetrics(source, async () => sampleOf([]));
    // No sample (only the HELP and TYPE lines) for a gateway that is no pair.
    expect(await m.render()).not.toMatch(/^tenant_egress_ha_/m);
    source.ha = haStatus;
    const text = await m.render();
    expect(value(text, 'tenant_egress_ha_role{instance="gw-b",role="active"}')).toBe(1);
    expect(value(text, 'tenant_egress_ha_role{instance="gw-b",role="standby"}')).toBe(0);
    expect(value(text, 'tenant_egress_ha_peer_advert_timestamp_seconds{instance="gw-b"}')).toBe(
      Date.parse("2026-12-01T10:00:09.500Z") / 1000,
    );
    expect(value(text, 'tenant_egress_ha_peer_advert_priority{instance="gw-b"}')).toBe(150);
    expect(value(text, 'tenant_egress_ha_sync_healthy{instance="gw-b"}')).toBe(1);
    expect(value(text, 'tenant_egress_ha_replicated_connections{instance="gw-b"}')).toBe(24);
    expect(value(text, 'tenant_egress_ha_addresses_held{instance="gw-b"}')).toBe(2);
  });

  it("says on the page who is active, when the peer was heard and how sync is", () => {
    expect(renderHa(emptyStatus, 0)).toBe("");
    const line = renderHa(
      { ...emptyStatus, ha: { ...haStatus, sync: { healthy: false, reason: "a<b" } } },
      Date.parse("2026-12-01T10:00:10.000Z"),
    );
    expect(line).toContain("gw-b: active");
    expect(line).toContain("peer gw-a advertised 0.5 s ago (priority 150)");
    expect(line).toContain("sync unhealthy: a&#60;b");
    expect(line).toContain("24 replicated connections");
    expect(line).toContain("holds 2 of 2 moving addresses");
  });
});
