/**
 * `serve`: the HTTP side (http.ts) over a gateway that is applied once, for using and testing
 * the endpoints without the long-running reconcile loop. Its ReconcileSource is that one apply,
 * reported honestly: generation 1 if the file was accepted, the file's error if not, the apply's
 * result and duration; readiness compares the kernel with the file at every probe (a dry-run
 * diff), so a change made behind its back (a `reset`) turns /readyz red with what differs.
 */
import { applyConfig } from "./commands.js";
import { type GatewayConfig, GatewayConfigError, readGatewayConfig } from "./config.js";
import type { Readiness, ReconcileEvent, ReconcileSource } from "./metrics.js";

export class AppliedOnce implements ReconcileSource {
  generation = 0;
  configError: string | undefined;
  lastSuccess: Date | undefined;
  private config: GatewayConfig | undefined;
  private last: ReconcileEvent | undefined;
  private readonly listeners: Array<(e: ReconcileEvent) => void> = [];

  constructor(readonly netns: string | undefined) {}

  onReconcile(listener: (e: ReconcileEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Reads, validates and applies `file`; never throws: the outcome is the event (also logged by the caller). */
  async apply(file: string): Promise<ReconcileEvent> {
    const started = process.hrtime.bigint();
    const done = (e: Omit<ReconcileEvent, "seconds" | "at">): ReconcileEvent => {
      const event = { ...e, seconds: Number(process.hrtime.bigint() - started) / 1e9, at: new Date() };
      this.last = event;
      if (e.result === "changed" || e.result === "unchanged") this.lastSuccess = event.at;
      for (const l of this.listeners) l(event);
      return event;
    };
    let config: GatewayConfig;
    try {
      config = await readGatewayConfig(file);
    } catch (e) {
      if (!(e instanceof GatewayConfigError)) throw e;
      this.configError = e.message;
      return done({ result: "invalid_config", changes: [], error: e.message });
    }
    this.config = config;
    this.configError = undefined;
    this.generation++;
    try {
      const o = await applyConfig(config, { ...(this.netns ? { netns: this.netns } : {}) });
      return done({ result: o.changes.problems.length ? "changed" : "unchanged", changes: o.changes.problems });
    } catch (e) {
      return done({ result: "failed", changes: [], error: (e as Error).message });
    }
  }

  async readiness(): Promise<Readiness> {
    if (!this.config) return { ready: false, reason: this.configError ? `configuration refused: ${this.configError}` : "no configuration applied (serve without -f)" };
    if (this.last?.result === "failed") return { ready: false, reason: `the last apply failed: ${this.last.error}` };
    const o = await applyConfig(this.config, { ...(this.netns ? { netns: this.netns } : {}), dryRun: true });
    const [first, ...more] = o.changes.problems;
    return first
      ? { ready: false, reason: `the kernel differs from the configuration: ${first}${more.length ? ` (and ${more.length} more)` : ""}` }
      : { ready: true, reason: `the kernel matches the configuration (generation ${this.generation})` };
  }
}
