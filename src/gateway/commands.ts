/**
 * The gateway's verbs over the shared reconcile mechanism:
 *   apply            diff(plan(config, learned pods), observed) within everything the gateway owns → apply
 *   sync pods        the same, for the learned pods' neighbour entries only (what a new FDB entry changes)
 *   delete --tenant  diff(nothing, observed) within one tenant's objects → apply
 *   reset            diff(nothing, observed) within everything the gateway owns → apply
 *   status           sample twice, an interval apart: counters and achieved rates per tenant
 *   sampler          one reading of settings and counters per tenant (what a metrics scrape shows)
 * The namespace is the one the command runs in, or --netns; nothing outside what the gateway
 * owns (by name: tev<VNI> devices, TEG-* chains, the 7e: qdisc trees) is ever changed.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { apply } from "../net/apply.js";
import {
  type AnyChange,
  diff,
  emptyState,
  type Neighbour,
  type NetState,
  type Scope,
  stateOf,
} from "../net/desired-state.js";
import type { VxlanLink } from "../net/objects.js";
import {
  type FdbEntry,
  type LinkReading,
  type Observed,
  observe,
  observeFdb,
  observeLinks,
  observeNeighbours,
  observeNftTable,
  observeTracked,
  parseFdb,
  readFdb,
  type TrackedSource6,
} from "../net/observe.js";
import { type LeafKind, probeLeafKind } from "../net/probe.js";
import { KeptReaders, oneShot, type Readers } from "../net/readers.js";
import { run } from "../net/run.js";
import {
  type ClassReading,
  type ClassStats,
  classReader,
  type ObservedQdisc,
  observeQdiscs,
  type TcObservation,
} from "../net/tc.js";
import { classMinorOf, type GatewayConfig } from "./config.js";
import {
  ALIAS_PREFIX,
  classId,
  DEFAULT_MINOR,
  gatewayScope,
  HANDLE,
  isTunnelDevice,
  type LearnedPods,
  learnedPods,
  NFT_TABLE,
  planGateway,
  podNeighbours,
  TUNNEL_MINOR,
  tenantScope,
  tunnelDevice,
} from "./plan.js";

export class GatewayError extends Error {}

const MAIN_TABLE = 254;
const OUR_ROOT = `${HANDLE.toString(16)}:`;

interface Snapshot {
  observed: Observed;
  tc: TcObservation;
  uplink: string;
  /** process.hrtime.bigint() as the class counters were read (the moment rates are measured at). */
  countersAt: bigint;
  fdb: FdbEntry[];
  tracked: string[];
  ndp: Neighbour[];
  tracked6: TrackedSource6[];
}

function defaultRouteDev(o: Observed): string | undefined {
  return o.state.routes.find((r) => r.table === MAIN_TABLE && r.dst === "default")?.dev;
}

/** Tenants present in the kernel, by the alias on their tunnel device. */
function presentTenants(links: readonly VxlanLink[]): Array<{ name: string; vni: number; dev: string }> {
  return links
    .filter((l) => isTunnelDevice(l.name) && l.alias?.startsWith(ALIAS_PREFIX))
    .map((l) => ({ name: l.alias!.slice(ALIAS_PREFIX.length), vni: l.vni, dev: l.name }));
}

/**
 * The uplink: the configured one, else the device carrying our root qdisc (a gateway that has
 * applied), else the default route's.
 */
function uplinkOf(
  wanted: string | undefined,
  qdiscs: readonly ObservedQdisc[],
  tunnels: readonly string[],
  defaultDev: string | undefined,
  interfaces: readonly { name: string }[],
): string {
  const ourRootDev = qdiscs.find((q) => q.parent === "root" && q.handle === OUR_ROOT && !tunnels.includes(q.dev))?.dev;
  const uplink = wanted ?? ourRootDev ?? defaultDev;
  if (!uplink)
    throw new GatewayError('no uplink: this namespace has no default route; set "uplink" in the configuration');
  if (!interfaces.some((l) => l.name === uplink))
    throw new GatewayError(`uplink ${uplink} does not exist in this namespace`);
  return uplink;
}

/**
 * How the gateway's readings reach the kernel: the batch tools they ask, and the class counters
 * (see `classReader`). A one-shot command starts new processes; a daemon keeps one `Reading` for
 * its whole life (`keptReading`), so its reconciles and scrapes ask processes it already has and
 * read the classes in parallel with everything else.
 */
export interface Reading {
  netns: string | undefined;
  readers: Readers;
  classes: () => ClassReading;
}

export function oneShotReading(netns: string | undefined): Reading {
  return { netns, readers: oneShot(netns), classes: classReader(netns) };
}

/** A daemon's reading: `close` ends its kept processes. */
export function keptReading(netns: string | undefined): Reading & { close(): void } {
  const readers = new KeptReaders(netns);
  return { netns, readers, classes: classReader(netns), close: () => readers.close() };
}

/**
 * Everything the gateway owns as it is now, and the facts its learned pods come from (FDB,
 * conntrack, NDP): one round of processes in parallel. The FDB and NDP are read for every
 * device and kept for the tunnels once `ip` has said which they are.
 */
async function snapshot(reading: Reading, uplinkWanted: string | undefined): Promise<Snapshot> {
  const { netns, readers } = reading;
  const classesOf = reading.classes();
  const [observed, qdiscs, fdbJson, { tracked, tracked6 }, nftChains] = await Promise.all([
    observe(netns, { tables: [MAIN_TABLE], neighbours: true }, readers),
    observeQdiscs(netns, readers),
    readFdb(readers),
    observeTracked(netns),
    observeNftTable(netns, "ip6", NFT_TABLE),
  ]);
  const tunnels = observed.state.links.filter((l) => isTunnelDevice(l.name)).map((l) => l.name);
  const uplink = uplinkOf(uplinkWanted, qdiscs, tunnels, defaultRouteDev(observed), observed.interfaces);
  const classes = await classesOf([uplink, ...tunnels]);
  const fdb = parseFdb(fdbJson, tunnels);
  const ndp = (observed.ndp ?? []).filter((n) => tunnels.includes(n.dev));
  const countersAt = process.hrtime.bigint();
  const tc = { qdiscs, ...classes };
  observed.state.qdiscs = tc.qdiscs;
  observed.state.classes = tc.classes;
  observed.state.nftChains = nftChains;
  return { observed, tc, uplink, countersAt, fdb, tracked, ndp, tracked6 };
}

export interface Outcome {
  /** What the reconcile changed (or would, in a dry run); `problems(changes)` says it in words. */
  changes: AnyChange[];
  uplink: string;
  /** The pods the tunnels have learned (and the MACs that break the contract), as this reconcile saw them. */
  learned: LearnedPods;
}

async function reconcile(
  netns: string | undefined,
  desired: NetState,
  snap: Snapshot,
  scope: Scope,
  dryRun: boolean,
  learned: LearnedPods,
): Promise<Outcome> {
  const changes = diff(desired, snap.observed.state, scope);
  if (!dryRun && changes.length) await apply(netns, changes);
  return { changes, uplink: snap.uplink, learned };
}

const NO_PODS: LearnedPods = { pods: [], strangers: [] };

/**
 * `leaf`: the kernel's leaf qdisc kind when already probed, and `reading`: the daemon's (a
 * daemon probes once and keeps its readers, not a new set on every reconcile).
 */
export async function applyConfig(
  config: GatewayConfig,
  opts: { netns?: string; dryRun?: boolean; leaf?: LeafKind; reading?: Reading },
): Promise<Outcome> {
  const snap = await snapshot(opts.reading ?? oneShotReading(opts.netns), config.uplink);
  const foreign = snap.tc.qdiscs.find(
    (q) => q.dev === snap.uplink && q.parent === "root" && q.kind === "htb" && q.handle !== OUR_ROOT,
  );
  if (foreign && config.tenants.length) {
    throw new GatewayError(
      `uplink ${snap.uplink} already has an HTB root (handle ${foreign.handle}) that tenant-egress does not own; remove it or choose another uplink`,
    );
  }
  const addr = snap.observed.state.addresses.find((a) => a.dev === snap.uplink);
  if (!addr && config.tenants.length)
    throw new GatewayError(`uplink ${snap.uplink} has no IPv4 address to terminate VXLAN on`);
  const mtu = snap.observed.interfaces.find((l) => l.name === snap.uplink)!.mtu;
  const leaf = opts.leaf ?? (config.tenants.length ? await probeLeafKind(opts.netns) : "tbf");
  const desired = planGateway(config, {
    uplink: snap.uplink,
    uplinkIP: addr?.local ?? "",
    uplinkMtu: mtu,
    leaf,
    fdb: snap.fdb,
    tracked: snap.tracked,
    ndp: snap.ndp,
    tracked6: snap.tracked6,
  });
  return reconcile(opts.netns, desired, snap, gatewayScope(snap.uplink), !!opts.dryRun, learnedPods(config, snap.fdb));
}

/**
 * Brings the learned pods' neighbour entries up to date, and nothing else: what a new or
 * removed FDB entry changes. Three readings (the FDB, conntrack of both families, the neighbour
 * table; a daemon's kept readers answer two of them), so it can follow the kernel's
 * notifications; everything else waits for the next full reconcile.
 */
export async function syncPods(
  config: GatewayConfig,
  opts: { netns?: string; uplink: string; reading?: Reading },
): Promise<Outcome> {
  const devices = config.tenants.map((t) => tunnelDevice(t.vni));
  const readers = opts.reading?.readers ?? oneShot(opts.netns);
  const [fdb, { tracked, tracked6 }, neighbours] = await Promise.all([
    observeFdb(opts.netns, devices, readers),
    observeTracked(opts.netns),
    observeNeighbours(opts.netns, readers),
  ]);
  const ndp = neighbours.ndp.filter((n) => devices.includes(n.dev));
  const desired = stateOf({ neighbours: podNeighbours(config, fdb, tracked, ndp, tracked6) });
  const observed = stateOf({ neighbours: neighbours.permanent.filter((n) => devices.includes(n.dev)) });
  const changes = diff(desired, observed, gatewayScope(opts.uplink));
  if (changes.length) await apply(opts.netns, changes);
  return { changes, uplink: opts.uplink, learned: learnedPods(config, fdb) };
}

export async function deleteTenant(name: string, opts: { netns?: string }): Promise<Outcome> {
  const snap = await snapshot(oneShotReading(opts.netns), undefined);
  const t = presentTenants(snap.observed.state.links).find((x) => x.name === name);
  if (!t) {
    const known = presentTenants(snap.observed.state.links).map((x) => x.name);
    throw new GatewayError(
      `tenant ${name} is not configured here${known.length ? ` (tenants: ${known.join(", ")})` : " (no tenants)"}`,
    );
  }
  return reconcile(
    opts.netns,
    emptyState(),
    snap,
    tenantScope(snap.uplink, t.vni, classMinorOf(t.vni)),
    false,
    NO_PODS,
  );
}

export async function reset(opts: { netns?: string }): Promise<Outcome> {
  const snap = await snapshot(oneShotReading(opts.netns), undefined);
  return reconcile(opts.netns, emptyState(), snap, gatewayScope(snap.uplink), false, NO_PODS);
}

export interface DirectionSample extends ClassStats {
  dev: string;
  /** bits/s, as the kernel holds them */
  rate: number;
  ceil: number;
}

export interface DirectionStatus extends DirectionSample {
  /** bits/s over the sampling interval */
  achieved: number;
}

export interface TenantSample {
  name: string;
  vni: number;
  upload?: DirectionSample;
  download?: DirectionSample;
  /** Neighbour entries on the tenant's tunnel device: the pods the gateway can send to. */
  neighbours: number;
  /** VXLAN FDB entries the tunnel learned from pods' traffic: pods seen, each at its node. */
  podsLearned: number;
}

/** One reading of the gateway's kernel state: settings and counters, no rates (those need two). */
export interface GatewaySample {
  uplink: string;
  /** process.hrtime.bigint() when the counters were read. */
  at: bigint;
  /** Packets HTB sent without any class: must stay 0. */
  directPackets: number;
  tenants: TenantSample[];
  unclassified?: DirectionSample;
  tunnel?: DirectionSample;
}

/** Entries per tunnel device in `ip neigh show` / `bridge fdb show` text ("… dev tev300 …"); `learned` keeps FDB entries a pod's traffic created. */
export function countPerTunnel(text: string, learned = false): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    const dev = / dev (tev\d+)\b/.exec(line)?.[1];
    if (!dev || (learned && (!/ dst /.test(line) || /\bpermanent\b/.test(line)))) continue;
    counts.set(dev, (counts.get(dev) ?? 0) + 1);
  }
  return counts;
}

/** Reads the settings and counters of every tenant, as a metrics scrape or a status line shows them. */
export type Sampler = () => Promise<GatewaySample>;

/**
 * A sampler for one namespace. A reading is one round of processes in parallel — `ip` (links,
 * default route, neighbour counts), `bridge fdb`, `tc qdisc` and the class counters of the uplink
 * and every tunnel (`classReader`: the devices the previous reading found, read again when they
 * differ) — so a scrape costs one process start-up, not two in a row; a daemon's scrapes ask
 * its kept readers (`reading`).
 */
export function sampler(netns: string | undefined, reading: Reading = oneShotReading(netns)): Sampler {
  return async () => {
    const classesOf = reading.classes();
    const [links, qdiscs, fdb] = await Promise.all([
      observeLinks(netns, reading.readers),
      observeQdiscs(netns, reading.readers),
      run(["bridge", "fdb", "show"], { netns }),
    ]);
    const tunnels = links.links.filter((l) => isTunnelDevice(l.name)).map((l) => l.name);
    const uplink = uplinkOf(undefined, qdiscs, tunnels, links.defaultDev, links.interfaces);
    const classes = await classesOf([uplink, ...tunnels]);
    return sampleOf(links, qdiscs, { qdiscs, ...classes }, uplink, countPerTunnel(fdb.stdout, true));
  };
}

function sampleOf(
  links: LinkReading,
  qdiscs: readonly ObservedQdisc[],
  tc: TcObservation,
  uplink: string,
  learned: Map<string, number>,
): GatewaySample {
  const countersAt = process.hrtime.bigint();
  const direction = (dev: string, minor: number): DirectionSample | undefined => {
    const id = classId(minor);
    const cls = tc.classes.find((c) => c.dev === dev && c.classid === id);
    const stats = tc.stats.get(dev)?.find((s) => s.classid === id);
    return cls && stats ? { ...stats, dev, rate: cls.rate, ceil: cls.ceil } : undefined;
  };
  const unclassified = direction(uplink, DEFAULT_MINOR);
  const tunnel = direction(uplink, TUNNEL_MINOR);
  return {
    uplink,
    at: countersAt,
    directPackets: qdiscs
      .filter((q) => q.kind === "htb" && q.handle === OUR_ROOT)
      .reduce((s, q) => s + (q.directPackets ?? 0), 0),
    tenants: presentTenants(links.links).map((t) => {
      const minor = classMinorOf(t.vni);
      const upload = direction(uplink, minor);
      const download = direction(t.dev, minor);
      return {
        name: t.name,
        vni: t.vni,
        ...(upload ? { upload } : {}),
        ...(download ? { download } : {}),
        neighbours: links.neighbours.get(t.dev) ?? 0,
        podsLearned: learned.get(t.dev) ?? 0,
      };
    }),
    ...(unclassified ? { unclassified } : {}),
    ...(tunnel ? { tunnel } : {}),
  };
}

export interface GatewayStatus {
  uplink: string;
  intervalSeconds: number;
  /** Packets HTB sent without any class: must stay 0. */
  directPackets: number;
  tenants: Array<Omit<TenantSample, "upload" | "download"> & { upload?: DirectionStatus; download?: DirectionStatus }>;
  unclassified?: DirectionStatus;
  tunnel?: DirectionStatus;
}

/** Rates between two samples: `now`'s settings and counters, with the bits/s achieved since `before`. */
export function between(before: GatewaySample, now: GatewaySample): GatewayStatus {
  const seconds = Number(now.at - before.at) / 1e9;
  const rated = (d: DirectionSample | undefined, prev: DirectionSample | undefined): DirectionStatus | undefined =>
    d && { ...d, achieved: Math.max(0, ((d.bytes - (prev?.dev === d.dev ? prev.bytes : 0)) * 8) / seconds) };
  const { at: _at, tenants, unclassified, tunnel, ...rest } = now;
  const up = rated(unclassified, before.unclassified);
  const tun = rated(tunnel, before.tunnel);
  return {
    ...rest,
    intervalSeconds: seconds,
    tenants: tenants.map(({ upload, download, ...t }) => {
      const was = before.tenants.find((b) => b.name === t.name);
      const u = rated(upload, was?.upload);
      const d = rated(download, was?.download);
      return { ...t, ...(u ? { upload: u } : {}), ...(d ? { download: d } : {}) };
    }),
    ...(up ? { unclassified: up } : {}),
    ...(tun ? { tunnel: tun } : {}),
  };
}

export async function status(opts: { netns?: string; intervalSeconds: number }): Promise<GatewayStatus> {
  const read = sampler(opts.netns);
  const first = await read();
  await sleep(opts.intervalSeconds * 1000);
  return between(first, await read());
}
