/**
 * A helper daemon the gateway keeps running (keepalived, conntrackd, the advertisement watcher):
 * started inside the gateway's namespace, its output forwarded line by line into the gateway's
 * log, restarted after it dies, and stopped by its PID. Each child gets PR_SET_PDEATHSIG through
 * setpriv, so even a SIGKILLed gateway leaves none of them behind to keep a role or an address
 * it no longer supervises. Restarts back off (up to a few seconds) so a child that cannot start
 * does not spin, and the owner hears of every exit to undo what the child held.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { Logger } from "../log.js";

export interface ChildSpec {
  /** A short name for logs and status ("keepalived"). */
  name: string;
  argv: string[];
  netns?: string;
  log: Logger;
  /** Each line of output; the default forwards it to the log. */
  onLine?: (line: string) => void;
  /** Runs before every (re)start: clean up what a dead predecessor left. */
  beforeStart?: () => Promise<void>;
  onExit?: (how: string) => void;
  /** The first restart's delay (later ones double it); default FIRST_BACKOFF_MS. */
  firstBackoffMs?: number;
  /** Gives the child a pipe for its stdin (see write); otherwise it reads nothing. */
  input?: boolean;
}

const FIRST_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 5000;
/** A child that ran this long before dying was healthy: its next restart is quick again. */
const HEALTHY_MS = 10_000;

export class Supervised {
  private child?: ChildProcess;
  private timer?: NodeJS.Timeout;
  private stopping = false;
  private readonly first: number;
  private backoff: number;
  private startedAt = 0;
  restarts = 0;

  constructor(private readonly spec: ChildSpec) {
    this.first = spec.firstBackoffMs ?? FIRST_BACKOFF_MS;
    this.backoff = this.first;
  }

  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  async start(): Promise<void> {
    await this.spec.beforeStart?.();
    if (this.stopping) return;
    const { argv, netns, name, log } = this.spec;
    const full = [
      "setpriv",
      "--pdeathsig",
      "KILL",
      "--",
      ...(netns ? ["nsenter", `--net=${netns}`, "--"] : []),
      ...argv,
    ];
    const child = spawn(full[0]!, full.slice(1), { stdio: [this.spec.input ? "pipe" : "ignore", "pipe", "pipe"] });
    // A child that died with input unread is reported by "close"; the write must not throw.
    child.stdin?.on("error", () => {});
    this.child = child;
    this.startedAt = Date.now();
    const onLine = this.spec.onLine ?? ((line: string) => log("info", name, `${name}: ${line}`));
    createInterface({ input: child.stdout! }).on("line", onLine);
    createInterface({ input: child.stderr! }).on("line", onLine);
    child.on("error", (e) => log("error", name, `cannot start ${name} (${argv.join(" ")}): ${e.message}`));
    child.on("spawn", () => log("info", name, `${name} started (pid ${child.pid})`, { pid: child.pid }));
    child.on("close", (code, signal) => {
      const how = signal ?? `exit ${code}`;
      if (this.child === child) this.child = undefined;
      if (this.stopping) return;
      this.spec.onExit?.(how);
      if (Date.now() - this.startedAt > HEALTHY_MS) this.backoff = this.first;
      log("warn", name, `${name} ended (${how}); restarting it in ${this.backoff} ms`, { how });
      this.timer = setTimeout(() => {
        this.restarts++;
        this.start().catch((e) => log("error", name, `cannot restart ${name}: ${(e as Error).message}`));
      }, this.backoff);
      this.backoff = Math.max(this.first, Math.min(this.backoff * 2, MAX_BACKOFF_MS));
    });
  }

  /** Writes to the running child's stdin (`input`); false if it is not running. */
  write(text: string): boolean {
    if (!this.pid || !this.child?.stdin) return false;
    this.child.stdin.write(text);
    return true;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.pid) this.child!.kill(sig);
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 3000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const closed = new Promise<void>((r) => child.once("close", () => r()));
    child.kill("SIGTERM");
    const kill = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await closed;
    clearTimeout(kill);
  }
}
