/**
 * `tenant-egress-gateway run`: the gateway as a long-lived workload. It keeps the namespace
 * matching FILE with the same reconcile as `apply`, triggered by everything that can make them
 * differ: the file changing (the directory is watched, because a Kubernetes ConfigMap changes
 * by swapping a symlink, not by writing the file), SIGHUP, a periodic resync that repairs drift
 * (and says what it repaired), and the kernel learning or forgetting a pod (a `bridge monitor
 * fdb` child), so a new pod's neighbour entry exists within moments of its first packet.
 *
 * Reconciles run one at a time; triggers that arrive meanwhile are merged into one more run. A
 * file that does not parse is refused and reported, and the last good configuration stays in
 * force. Stopping leaves the kernel as it is (a restart with an unchanged file then changes
 * nothing, so no flow notices), unless cleanup on exit was asked for.
 *
 * The daemon is also what an HTTP layer reads: `state()` is a snapshot of everything it knows
 * (configuration generation and error, the last reconcile and a bounded history, the learned
 * pods per tenant, the MACs that break the contract); `generation`, `configError`,
 * `lastSuccess`, `readiness()` and `onReconcile()` are the same facts in the shape the metrics
 * read (a reconcile's result: changed, unchanged, failed, or a refused file).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { type FSWatcher, watch } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { createInterface } from "node:readline";
import { problems } from "../net/desired-state.js";
import { type LeafKind, probeLeafKind } from "../net/probe.js";
import { applyConfig, keptReading, type Outcome, type Reading, reset, syncPods } from "./commands.js";
import { type GatewayConfig, parseGatewayConfig } from "./config.js";
import { HaController, type HaStatus } from "./ha/controller.js";
import { lockNetns, type NetnsLock } from "./lock.js";
import type { Logger } from "./log.js";
import { describeStranger, type LearnedPod, type LearnedPods, type Stranger } from "./plan.js";

export type Reason = "start" | "file" | "sighup" | "resync" | "pods";

export interface ReconcileRecord {
  /** ISO time the reconcile finished. */
  at: string;
  reason: Reason;
  ok: boolean;
  /** What was changed (or, if it failed, what was to change), in words. */
  changes: string[];
  /** Pods learned and forgotten since the previous reconcile ("172.16.0.5 (acme) at VTEP 10.22.0.5"). */
  podsLearned: string[];
  podsForgotten: string[];
  durationMs: number;
  generation: number;
  error?: string;
}

export interface DaemonState {
  file: string;
  netns?: string;
  uplink?: string;
  /** How many distinct valid configurations have been loaded; 0 until the first. */
  generation: number;
  config?: GatewayConfig;
  /** Why the file as it is now was refused (the last good configuration stays in force). */
  configError?: { at: string; message: string };
  last?: ReconcileRecord;
  lastSuccessAt?: string;
  /** The most recent reconciles, oldest first. */
  history: ReconcileRecord[];
  reconciles: { ok: number; failed: number };
  /** Learned pods per tenant (every configured tenant has an entry). */
  pods: Record<string, LearnedPod[]>;
  /** Learned MACs that break the contract, as the last reconcile saw them. */
  strangers: Stranger[];
  /** Distinct contract breakers reported since start (each is logged once). */
  strangersReported: number;
  /** The pair's side of things, when the configuration asks for HA. */
  ha?: HaStatus;
}

export interface ReconcileEvent {
  result: "changed" | "unchanged" | "invalid_config" | "failed";
  seconds: number;
  at: Date;
  changes: readonly string[];
  error?: string;
}

export interface DaemonOptions {
  file: string;
  netns?: string;
  resyncMs: number;
  cleanupOnExit: boolean;
  log: Logger;
  /** Where the namespace lock lives (tests give their own). */
  lockDir?: string;
  /** Turns the file's JSON into a configuration (the executable also accepts the tenants file). */
  parse?: (json: unknown) => GatewayConfig;
  /** The HA instance's directory (its keepalived and conntrackd files); a temporary one if absent. */
  haDir?: string;
}

const HISTORY = 50;
/** Bursts of notifications (a node's pods starting together) become one reconcile. */
const SETTLE_MS = 50;
const RESTART_MONITOR_MS = 1000;

const podKey = (p: LearnedPod) => `${p.dev} ${p.ip} ${p.vtep}`;
const describePod = (p: LearnedPod) => `${p.ip} (${p.tenant}) at VTEP ${p.vtep}`;
const strangerKey = (s: Stranger) => `${s.dev} ${s.mac} ${s.vtep}`;

export class GatewayDaemon extends EventEmitter {
  private readonly o: DaemonOptions;
  private s: DaemonState;
  private lock?: NetnsLock;
  private leaf?: LeafKind;
  private fileText?: string;
  private goodText?: string;
  private known = new Map<string, LearnedPod>();
  private reported = new Set<string>();
  private wantFull?: Reason;
  private wantPods = false;
  private loop?: Promise<void>;
  private resync?: NodeJS.Timeout;
  private settle?: NodeJS.Timeout;
  private fileSettle?: NodeJS.Timeout;
  private watcher?: FSWatcher;
  private monitor?: ChildProcess;
  private monitorRestart?: NodeJS.Timeout;
  private stopping = false;
  private pair?: HaController;
  private haGeneration = 0;
  /** The processes every reading asks, kept from one reconcile (and scrape) to the next. */
  private readonly kept: Reading & { close(): void };

  constructor(options: DaemonOptions) {
    super();
    this.o = options;
    this.kept = keptReading(options.netns);
    this.s = {
      file: options.file,
      ...(options.netns ? { netns: options.netns } : {}),
      generation: 0,
      history: [],
      reconciles: { ok: 0, failed: 0 },
      pods: {},
      strangers: [],
      strangersReported: 0,
    };
  }

  /** A copy: readers cannot change the daemon's state. */
  state(): DaemonState {
    return { ...structuredClone(this.s), ...(this.pair ? { ha: this.pair.status() } : {}) };
  }

  /** The last reconcile succeeded and the file in force is the file as it is now. */
  ready(): boolean {
    return !!this.s.last?.ok && !this.s.configError;
  }

  get netns(): string | undefined {
    return this.o.netns;
  }

  /** How the daemon's readings reach the kernel; its HTTP side's scrapes share it. */
  get reading(): Reading {
    return this.kept;
  }

  get generation(): number {
    return this.s.generation;
  }

  get configError(): string | undefined {
    return this.s.configError?.message;
  }

  /** The pair's side, when the configuration in force asks for HA. */
  get ha(): HaStatus | undefined {
    return this.pair?.status();
  }

  get lastSuccess(): Date | undefined {
    return this.s.lastSuccessAt ? new Date(this.s.lastSuccessAt) : undefined;
  }

  /**
   * Ready: the file was accepted, the last reconcile succeeded, and the kernel matches the file
   * now — a dry-run diff at each probe, so a change made behind the daemon's back (a `reset`)
   * turns it red with what differs until the repair.
   */
  async readiness(): Promise<{ ready: boolean; reason: string }> {
    const s = this.s;
    if (s.configError) return { ready: false, reason: `configuration refused: ${s.configError.message}` };
    if (!s.last || !s.config) return { ready: false, reason: "no reconcile yet" };
    if (!s.last.ok) return { ready: false, reason: `the last reconcile failed: ${s.last.error ?? ""}` };
    const o = await applyConfig(s.config, {
      ...(this.netns ? { netns: this.netns } : {}),
      dryRun: true,
      reading: this.kept,
    });
    // Neighbour entries follow pods as they come and go and are synced within ~50 ms of the
    // kernel learning them: a probe landing in that window must not flap readiness on every new
    // pod. Everything else (devices, chains, classes) must match.
    const [first, ...more] = problems(o.changes.filter((c) => c.kind !== "neighbours"));
    if (first)
      return {
        ready: false,
        reason: `the kernel differs from the configuration: ${first}${more.length ? ` (and ${more.length} more)` : ""}`,
      };
    return { ready: true, reason: `the kernel matches the configuration (generation ${s.generation})` };
  }

  /** Each finished reconcile, and each refused file, as the metrics count them. */
  onReconcile(listener: (e: ReconcileEvent) => void): void {
    this.on("reconcile-event", listener);
  }

  /**
   * Locks the namespace, starts following the kernel and the file, and starts the first
   * reconcile (`idle()` resolves when it is done): an HTTP side started next answers /healthz
   * while a long first apply runs, and its metrics see that apply.
   */
  async start(): Promise<void> {
    this.lock = await lockNetns(this.o.netns, this.o.lockDir);
    try {
      this.startMonitor();
      this.watcher = watch(dirname(this.o.file), () => this.fileEvent());
      this.watcher.on("error", (e) =>
        this.o.log("error", "watch", `cannot watch ${dirname(this.o.file)}: ${e.message}`),
      );
      this.resync = setInterval(() => this.kick("resync"), this.o.resyncMs);
      this.kick("start");
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** Re-reads the file and reconciles (SIGHUP). */
  reload(): void {
    this.kick("sighup");
  }

  /** Resolves once no reconcile is running or queued. */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  /** Stops following; leaves the kernel as it is unless cleanup on exit was asked for. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.resync);
    clearTimeout(this.monitorRestart);
    clearTimeout(this.settle);
    clearTimeout(this.fileSettle);
    this.watcher?.close();
    this.monitor?.kill("SIGTERM");
    await this.idle();
    await this.pair?.stop();
    this.pair = undefined;
    if (this.o.cleanupOnExit && this.lock) {
      try {
        const r = await reset(this.o.netns ? { netns: this.o.netns } : {});
        const removed = problems(r.changes);
        this.o.log(
          "info",
          "cleanup",
          `cleanup on exit: removed ${removed.length} thing${removed.length === 1 ? "" : "s"}`,
          { changes: removed },
        );
      } catch (e) {
        this.o.log("error", "cleanup", `cleanup on exit failed: ${(e as Error).message}`);
      }
    }
    this.kept.close();
    await this.lock?.release();
    this.lock = undefined;
  }

  /** At most one pending timer per trigger: a steady stream of events is served every SETTLE_MS, never postponed. */
  private fileEvent(): void {
    this.fileSettle ??= setTimeout(() => {
      this.fileSettle = undefined;
      this.kick("file");
    }, SETTLE_MS);
  }

  private fdbEvent(): void {
    this.settle ??= setTimeout(() => {
      this.settle = undefined;
      this.kick("pods");
    }, SETTLE_MS);
  }

  private kick(reason: Reason): void {
    if (this.stopping && reason !== "start") return;
    if (reason === "pods") this.wantPods = true;
    else if (!this.wantFull || reason !== "file") this.wantFull = reason;
    if (!this.loop) this.loop = this.drain();
  }

  private async drain(): Promise<void> {
    try {
      while (this.wantFull || this.wantPods) {
        if (this.wantFull) {
          const reason = this.wantFull;
          this.wantFull = undefined;
          this.wantPods = false;
          await this.full(reason);
        } else {
          this.wantPods = false;
          await this.podsOnly();
        }
      }
    } finally {
      this.loop = undefined;
    }
  }

  /**
   * Reads the file; a new valid text becomes the configuration in force, an invalid one is
   * refused and kept as the error. Returns false when the file is unchanged since last read.
   */
  private async load(): Promise<boolean> {
    let text: string;
    try {
      text = await readFile(this.o.file, "utf8");
    } catch (e) {
      text = `\0unreadable: ${(e as Error).message}`;
    }
    if (text === this.fileText) return false;
    this.fileText = text;
    try {
      if (text.startsWith("\0unreadable: ")) throw new Error(`cannot read ${this.o.file}: ${text.slice(13)}`);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (e) {
        throw new Error(`cannot read ${this.o.file} as JSON: ${(e as Error).message}`);
      }
      const config = (this.o.parse ?? parseGatewayConfig)(json);
      delete this.s.configError;
      if (text !== this.goodText) {
        this.goodText = text;
        this.s.config = config;
        this.s.generation++;
      }
    } catch (e) {
      const message = (e as Error).message;
      this.s.configError = { at: new Date().toISOString(), message };
      const kept = this.s.generation ? `keeping generation ${this.s.generation}` : "nothing applied yet";
      this.o.log("error", "config", `refused ${this.o.file}: ${message} (${kept})`, {
        error: message,
        generation: this.s.generation,
      });
      this.emit("reconcile-event", {
        result: "invalid_config",
        seconds: 0,
        at: new Date(),
        changes: [],
        error: message,
      } satisfies ReconcileEvent);
    }
    return true;
  }

  private async full(reason: Reason): Promise<void> {
    const started = performance.now();
    const changed = await this.load();
    // A file event that changed nothing, or brought a file that was refused, has nothing to apply.
    if (reason === "file" && (!changed || this.s.configError)) return;
    const config = this.s.config;
    if (!config) return;
    try {
      this.leaf ??= config.tenants.length ? await probeLeafKind(this.o.netns) : undefined;
      const outcome = await applyConfig(config, {
        ...(this.o.netns ? { netns: this.o.netns } : {}),
        ...(this.leaf ? { leaf: this.leaf } : {}),
        reading: this.kept,
      });
      this.s.uplink = outcome.uplink;
      this.finish(reason, started, outcome);
    } catch (e) {
      this.fail(reason, started, e as Error);
      return;
    }
    await this.followHa(config, this.s.uplink);
  }

  /** Starts, updates or stops the pair's machinery as the configuration in force says. */
  private async followHa(config: GatewayConfig, uplink: string): Promise<void> {
    if (this.stopping) return;
    try {
      if (!config.ha) {
        await this.pair?.stop();
        this.pair = undefined;
        return;
      }
      if (this.o.netns)
        throw new Error(
          "HA mode runs inside the gateway's namespace (start `run` there, without --netns): keepalived, conntrackd and the learned-pod exchange are its own processes and sockets",
        );
      if (!this.pair) {
        const ha = new HaController({
          log: this.o.log,
          ...(this.o.haDir ? { dir: this.o.haDir } : {}),
          pods: () => [...this.known.values()].map((p) => ({ dev: p.dev, mac: p.mac, vtep: p.vtep })),
        });
        try {
          await ha.start(config, uplink);
        } catch (e) {
          await ha.stop();
          throw e;
        }
        this.pair = ha;
      } else if (this.haGeneration !== this.s.generation) {
        await this.pair.update(config, uplink);
      }
      this.haGeneration = this.s.generation;
    } catch (e) {
      this.o.log("error", "ha", `HA: ${(e as Error).message} (retried at the next reconcile)`);
    }
  }

  private async podsOnly(): Promise<void> {
    const { config, uplink } = this.s;
    // Until a full reconcile has run there is nothing to add pods to; it reads the FDB itself.
    if (!config || !uplink || !this.s.last?.ok) return;
    const started = performance.now();
    try {
      this.finish(
        "pods",
        started,
        await syncPods(config, { ...(this.o.netns ? { netns: this.o.netns } : {}), uplink, reading: this.kept }),
      );
    } catch (e) {
      this.fail("pods", started, e as Error);
    }
  }

  private track(learned: LearnedPods): { podsLearned: string[]; podsForgotten: string[] } {
    const now = new Map(learned.pods.map((p) => [podKey(p), p]));
    // The pods a (re)started daemon finds were learned before it: found, not new.
    const first = this.s.reconciles.ok === 0;
    const podsLearned = first ? [] : [...now].filter(([k]) => !this.known.has(k)).map(([, p]) => describePod(p));
    const podsForgotten = [...this.known].filter(([k]) => !now.has(k)).map(([, p]) => describePod(p));
    this.known = now;
    this.s.pods = Object.fromEntries(
      (this.s.config?.tenants ?? []).map((t) => [t.name, learned.pods.filter((p) => p.tenant === t.name)]),
    );
    this.s.strangers = learned.strangers;
    for (const st of learned.strangers) {
      if (this.reported.has(strangerKey(st))) continue;
      this.reported.add(strangerKey(st));
      this.s.strangersReported++;
      const subnet = this.s.config?.tenants.find((t) => t.name === st.tenant)?.overlaySubnet ?? "";
      this.o.log("warn", "mac-contract", describeStranger(st, subnet), {
        tenant: st.tenant,
        dev: st.dev,
        vtep: st.vtep,
        mac: st.mac,
      });
    }
    return { podsLearned, podsForgotten };
  }

  private record(r: ReconcileRecord): void {
    this.s.last = r;
    this.s.history.push(r);
    if (this.s.history.length > HISTORY) this.s.history.shift();
    if (r.ok) {
      this.s.reconciles.ok++;
      this.s.lastSuccessAt = r.at;
    } else {
      this.s.reconciles.failed++;
    }
    this.emit("reconcile", structuredClone(r));
    const result = !r.ok ? "failed" : r.changes.length ? "changed" : "unchanged";
    this.emit("reconcile-event", {
      result,
      seconds: r.durationMs / 1000,
      at: new Date(r.at),
      changes: [...r.changes],
      ...(r.error ? { error: r.error } : {}),
    } satisfies ReconcileEvent);
  }

  private finish(reason: Reason, started: number, o: Outcome): void {
    const pods = this.track(o.learned);
    if (pods.podsLearned.length || pods.podsForgotten.length) this.pair?.podsChanged();
    const r: ReconcileRecord = {
      at: new Date().toISOString(),
      reason,
      ok: true,
      changes: problems(o.changes),
      ...pods,
      durationMs: Math.round(performance.now() - started),
      generation: this.s.generation,
    };
    this.record(r);
    const n = r.changes.length;
    const verb = reason === "resync" ? "repaired" : "changed";
    const what = n ? `${verb} ${n} thing${n === 1 ? "" : "s"}: ${r.changes.join("; ")}` : "nothing to change";
    const known = o.learned.pods.length;
    const podText = [
      r.podsLearned.length ? `; learned ${r.podsLearned.join(", ")}` : "",
      r.podsForgotten.length ? `; forgot ${r.podsForgotten.join(", ")}` : "",
      reason === "start" ? `; ${known} learned pod${known === 1 ? "" : "s"} in the kernel` : "",
    ].join("");
    this.o.log(
      "info",
      "reconcile",
      `${reason}: ${what}${podText} (uplink ${o.uplink}, generation ${r.generation}, ${r.durationMs} ms)`,
      {
        reason,
        ok: true,
        changes: r.changes,
        podsLearned: r.podsLearned,
        podsForgotten: r.podsForgotten,
        podsKnown: known,
        uplink: o.uplink,
        generation: r.generation,
        durationMs: r.durationMs,
      },
    );
  }

  private fail(reason: Reason, started: number, e: Error): void {
    const r: ReconcileRecord = {
      at: new Date().toISOString(),
      reason,
      ok: false,
      changes: [],
      podsLearned: [],
      podsForgotten: [],
      durationMs: Math.round(performance.now() - started),
      generation: this.s.generation,
      error: e.message,
    };
    this.record(r);
    this.o.log(
      "error",
      "reconcile",
      `${reason}: failed: ${e.message} (generation ${r.generation}, ${r.durationMs} ms)`,
      { reason, ok: false, error: e.message, generation: r.generation, durationMs: r.durationMs },
    );
  }

  /**
   * Follows the kernel's FDB notifications. The child dies with us (PR_SET_PDEATHSIG via
   * setpriv), also when we are SIGKILLed, so a crashed daemon leaves no process behind.
   */
  private startMonitor(): void {
    const inner = ["bridge", "monitor", "fdb"];
    const argv = [
      "setpriv",
      "--pdeathsig",
      "KILL",
      "--",
      ...(this.o.netns ? ["nsenter", `--net=${this.o.netns}`, "--"] : []),
      ...inner,
    ];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    this.monitor = child;
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      if (/ dev tev\d+ /.test(` ${line} `)) this.fdbEvent();
    });
    child.stderr!.resume();
    child.on("error", (e) =>
      this.o.log("error", "monitor", `cannot follow FDB notifications (${argv.join(" ")}): ${e.message}`),
    );
    child.on("close", (code, signal) => {
      if (this.stopping) return;
      this.o.log(
        "warn",
        "monitor",
        `bridge monitor fdb ended (${signal ?? `exit ${code}`}); restarting it, and resyncing what it may have missed`,
      );
      this.monitorRestart = setTimeout(() => {
        if (this.stopping) return;
        this.startMonitor();
        this.kick("pods");
      }, RESTART_MONITOR_MS);
    });
  }
}

/** "30s", "500ms", "2m", or a number of seconds → milliseconds; undefined if it is none of these. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "m" ? 60_000 : 1000);
  return ms > 0 ? ms : undefined;
}
