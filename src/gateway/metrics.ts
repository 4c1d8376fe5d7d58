/**
 * The gateway's Prometheus metrics. Two kinds of facts meet here: what the kernel counts (HTB
 * classes' bytes, packets, drops, overlimits, backlog and settings per tenant and direction,
 * HTB's direct packets, neighbours and learned pods per tunnel), read at scrape time with one
 * reading of a `sampler()` per scrape, so a scrape always shows the kernel as it is and no counter is cached;
 * and what only the process running the reconcile loop knows (results, durations, the accepted
 * configuration), which it reports through the small `ReconcileSource` interface below.
 * prom-client renders the exposition format, so names, escaping and histogram buckets follow
 * the format's rules without a hand-written encoder. Rates are in bytes per second: Prometheus'
 * base unit (promtool rejects "bits"); `*8` gives bits/s, exactly as for the byte counters.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { type GatewaySample, type Reading, sampler, type TenantSample } from "./commands.js";
import type { HaStatus } from "./ha/controller.js";

/** How a reconcile ended: it changed the kernel, found nothing to change, was refused the file, or the kernel refused a change. */
export type ReconcileResult = "changed" | "unchanged" | "invalid_config" | "failed";
export const RECONCILE_RESULTS: readonly ReconcileResult[] = ["changed", "unchanged", "invalid_config", "failed"];

export interface ReconcileEvent {
  result: ReconcileResult;
  /** Wall time the reconcile took. */
  seconds: number;
  /** When it finished. */
  at: Date;
  /** What it changed (the diff's problems, as `apply` prints them); empty when nothing was. */
  changes: readonly string[];
  /** Why it failed or why the file was refused. */
  error?: string;
}

export interface Readiness {
  ready: boolean;
  /** One line a person can act on: what matches, or what is missing. */
  reason: string;
}

/**
 * What the process keeping the gateway reconciled tells the HTTP side. The metrics subscribe to
 * `onReconcile` when they are created and are not told about earlier reconciles: start the
 * HTTP side before the first reconcile (it also lets /healthz answer while a long first apply runs).
 */
export interface ReconcileSource {
  /** The namespace the gateway acts on (--netns); undefined is the process's own. */
  readonly netns?: string | undefined;
  /** How its readings reach the kernel (a daemon's kept readers); absent: new processes each time. */
  readonly reading?: Reading;
  /** Configurations accepted so far: 0 before the first, +1 for each accepted new file. */
  readonly generation: number;
  /** Why the newest file was refused; undefined while the newest file is the one in force. */
  readonly configError?: string | undefined;
  /** When a reconcile last ended without error. */
  readonly lastSuccess?: Date | undefined;
  /** Ready = the last reconcile succeeded and the kernel matches the accepted file. */
  readiness(): Readiness | Promise<Readiness>;
  onReconcile(listener: (e: ReconcileEvent) => void): void;
  /** The pair's side, when the gateway is one instance of an HA pair. */
  readonly ha?: HaStatus | undefined;
}

const ROLES = ["starting", "active", "standby", "fault", "stopped"] as const;

export const DURATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Shares one in-flight call among everyone asking while it runs (every metric's collect() of one scrape). */
export function sharedInFlight<T>(fn: () => Promise<T>): () => Promise<T> {
  let inFlight: Promise<T> | undefined;
  return () => (inFlight ??= fn().finally(() => (inFlight = undefined)));
}

const DIRECTIONS = ["upload", "download"] as const;

export interface GatewayMetrics {
  registry: Registry;
  /** The exposition text for one scrape. */
  render(): Promise<string>;
}

export function createMetrics(
  source: ReconcileSource,
  read: () => Promise<GatewaySample> = sampler(source.netns, source.reading),
): GatewayMetrics {
  const registry = new Registry();
  // The process's own health as every Node service exposes it: RSS, CPU, heap, GC, event-loop lag.
  collectDefaultMetrics({ register: registry });
  // Gauges whose names end in _total, which promtool (rightly) refuses; the counts are in nodejs_active_*.
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"])
    registry.removeSingleMetric(name);
  const scrape = sharedInFlight(read);
  const labelNames = ["tenant", "direction"] as const;

  type Direction = NonNullable<TenantSample["upload"]>;
  const eachDirection = (
    s: GatewaySample,
    fn: (labels: { tenant: string; direction: string }, d: Direction) => void,
  ) => {
    for (const t of s.tenants) {
      for (const direction of DIRECTIONS) {
        const d = t[direction];
        if (d) fn({ tenant: t.name, direction }, d);
      }
    }
  };
  // A counter only moves by inc(): after reset() (which also drops removed tenants) inc() sets it to the kernel's value.
  const directionCounter = (name: string, help: string, value: (d: Direction) => number) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const s = await scrape();
        this.reset();
        eachDirection(s, (l, d) => this.inc(l, value(d)));
      },
    });
  const directionGauge = (name: string, help: string, value: (d: Direction) => number) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const s = await scrape();
        this.reset();
        eachDirection(s, (l, d) => this.set(l, value(d)));
      },
    });

  directionCounter(
    "tenant_egress_bytes_total",
    "Bytes the tenant's HTB class sent: whole frames (IP and Ethernet headers included), upload on the uplink, download into the tunnel",
    (d) => d.bytes,
  );
  directionCounter("tenant_egress_packets_total", "Packets the tenant's HTB class sent", (d) => d.packets);
  directionCounter(
    "tenant_egress_dropped_packets_total",
    "Packets the tenant's queue dropped (expected under saturation: how TCP learns the rate)",
    (d) => d.drops,
  );
  directionCounter(
    "tenant_egress_overlimits_total",
    "Times the tenant's HTB class was held back by its rate or ceil",
    (d) => d.overlimits,
  );
  directionGauge(
    "tenant_egress_rate_bytes_per_second",
    "The tenant's guaranteed rate as the kernel holds it",
    (d) => d.rate / 8,
  );
  directionGauge(
    "tenant_egress_ceil_bytes_per_second",
    "The tenant's cap (borrowing up to it) as the kernel holds it",
    (d) => d.ceil / 8,
  );
  directionGauge("tenant_egress_backlog_bytes", "Bytes waiting in the tenant's queue now", (d) => d.backlogBytes);
  directionGauge("tenant_egress_backlog_packets", "Packets waiting in the tenant's queue now", (d) => d.backlogPackets);

  new Counter({
    name: "tenant_egress_unclassified_packets_total",
    help: "Packets HTB sent on the gateway's devices without any class (direct_packets_stat): must stay 0",
    registers: [registry],
    async collect() {
      const s = await scrape();
      this.reset();
      this.inc(s.directPackets);
    },
  });
  const perTenant = (name: string, help: string, value: (t: TenantSample) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["tenant"],
      registers: [registry],
      async collect() {
        const s = await scrape();
        this.reset();
        for (const t of s.tenants) this.set({ tenant: t.name }, value(t));
      },
    });
  perTenant(
    "tenant_egress_neighbours",
    "Neighbour entries on the tenant's tunnel: overlay addresses the gateway can send to",
    (t) => t.neighbours,
  );
  perTenant(
    "tenant_egress_pods_learned",
    "VXLAN FDB entries the tenant's tunnel learned from pods' traffic: pods seen, each at its node",
    (t) => t.podsLearned,
  );

  const reconciles = new Counter({
    name: "tenant_egress_reconciles_total",
    help: "Reconciles of the kernel with the configuration, by result",
    labelNames: ["result"],
    registers: [registry],
  });
  for (const result of RECONCILE_RESULTS) reconciles.inc({ result }, 0);
  const duration = new Histogram({
    name: "tenant_egress_reconcile_duration_seconds",
    help: "How long a reconcile took (observe, diff, apply)",
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  new Gauge({
    name: "tenant_egress_last_successful_reconcile_timestamp_seconds",
    help: "Unix time a reconcile last ended without error (0: never)",
    registers: [registry],
    collect() {
      this.set(source.lastSuccess ? source.lastSuccess.getTime() / 1000 : 0);
    },
  });
  new Gauge({
    name: "tenant_egress_config_generation",
    help: "Configurations accepted so far (0 before the first; +1 for each accepted new file)",
    registers: [registry],
    collect() {
      this.set(source.generation);
    },
  });
  new Gauge({
    name: "tenant_egress_config_error",
    help: "1 while the newest configuration file is refused (the last accepted one stays in force), else 0",
    registers: [registry],
    collect() {
      this.set(source.configError === undefined ? 0 : 1);
    },
  });
  // The pair's facts carry the instance's name: a dashboard shows both instances side by side,
  // and a gateway that is no pair exports none of them.
  const haGauge = (name: string, help: string, value: (h: HaStatus) => number | undefined, labels: string[] = []) =>
    new Gauge({
      name,
      help,
      labelNames: ["instance", ...labels],
      registers: [registry],
      collect() {
        this.reset();
        const h = source.ha;
        const v = h && value(h);
        if (h && v !== undefined) this.set({ instance: h.instance }, v);
      },
    });
  new Gauge({
    name: "tenant_egress_ha_role",
    help: "1 for the role this instance has now (active holds the shared and egress addresses), 0 for the others",
    labelNames: ["instance", "role"],
    registers: [registry],
    collect() {
      this.reset();
      const h = source.ha;
      if (h) for (const role of ROLES) this.set({ instance: h.instance, role }, h.role === role ? 1 : 0);
    },
  });
  haGauge("tenant_egress_ha_transitions", "Role changes since the daemon started", (h) => h.transitions);
  haGauge(
    "tenant_egress_ha_peer_advert_timestamp_seconds",
    "Unix time the peer's last VRRP advertisement was seen on the uplink",
    (h) => (h.peerAdvert ? Date.parse(h.peerAdvert.at) / 1000 : undefined),
  );
  haGauge(
    "tenant_egress_ha_peer_advert_priority",
    "The priority in the peer's last VRRP advertisement (0: it is giving the role up)",
    (h) => h.peerAdvert?.priority,
  );
  haGauge(
    "tenant_egress_ha_sync_healthy",
    "1 while conntrackd answers and the peer is heard on the sync link, else 0",
    (h) => (h.sync.healthy ? 1 : 0),
  );
  haGauge(
    "tenant_egress_ha_replicated_connections",
    "Connections in replication: the active's own that it sends, or on the standby those received, ready for a takeover",
    (h) => h.replicatedConnections,
  );
  haGauge(
    "tenant_egress_ha_addresses_held",
    "Shared and egress addresses on this instance's uplink (all of them on the active, none on the standby)",
    (h) => h.addresses.held.length,
  );
  haGauge(
    "tenant_egress_ha_sync_lost_messages",
    "Sync messages conntrackd counted as lost since it started",
    (h) => h.sync.stats?.lost,
  );
  source.onReconcile((e) => {
    reconciles.inc({ result: e.result });
    duration.observe(e.seconds);
  });
  return { registry, render: () => registry.metrics() };
}
