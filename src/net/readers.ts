/**
 * How a reading asks a batch tool (`ip -json -batch -`, `bridge -json -batch -`, `tc -json
 * -batch -`) for the kernel's state: a new process for each reading (a one-shot command), or a
 * process a daemon keeps and asks again at every reading. Every process Node starts is a fork
 * of the whole Node process, and spawn waits for the child's exec, so at a daemon's size a
 * start costs the event loop more than the tool's own work; these tools answer each command as
 * they read it, so one process can serve every reconcile and scrape.
 *
 * A kept reader caches nothing: each answer is the tool's fresh dump of the kernel. Questions
 * to one reader are asked one at a time, so answers cannot interleave. A reader whose question
 * failed is ended, so a half-read answer can never be taken for the next one; a reader that
 * had exited since it was last asked (killed, crashed) is replaced and asked once more. With a
 * namespace path, a reader that is no longer in the namespace the path names (deleted and made
 * again under the same name) is replaced too.
 */
import { statSync } from "node:fs";
import { run, type Started, start } from "./run.js";

export interface Readers {
  /** What `argv` (a tool printing one line per command it reads on stdin) prints for `input`. */
  ask(argv: readonly string[], input: string): Promise<string>;
}

/** A new process per question: what one-shot commands use. */
export function oneShot(netns: string | undefined): Readers {
  return { ask: async (argv, input) => (await run(argv, { netns, input })).stdout };
}

interface Kept {
  tool: Started;
  /** Whether it has answered before (a failure may then mean it died since). */
  used: boolean;
}

/** Readers a daemon keeps; `close` ends them. */
export class KeptReaders implements Readers {
  private readonly kept = new Map<string, Kept>();
  /** Per reader, the question being asked, settling once answered: the next one waits for it. */
  private readonly turns = new Map<string, Promise<void>>();
  private closed = false;

  constructor(private readonly netns: string | undefined) {}

  ask(argv: readonly string[], input: string): Promise<string> {
    // A question after `close` (a scrape answered while the daemon stops) gets a process of its own.
    if (this.closed) return oneShot(this.netns).ask(argv, input);
    const key = argv.join("\0");
    const turn = (this.turns.get(key) ?? Promise.resolve()).then(() => this.askNow(key, argv, input));
    // The next question waits for this one to settle, without holding on to its answer.
    this.turns.set(
      key,
      turn.then(
        () => {},
        () => {},
      ),
    );
    return turn;
  }

  close(): void {
    this.closed = true;
    for (const r of this.kept.values()) r.tool.cancel();
    this.kept.clear();
  }

  private async askNow(key: string, argv: readonly string[], input: string): Promise<string> {
    const r = this.reader(key, argv);
    try {
      const answer = await r.tool.ask(input, input.split("\n").length - 1);
      r.used = true;
      return answer;
    } catch (e) {
      this.drop(key, r);
      // A reader that had answered may have died since: a new one is asked once (it has not answered, so no more).
      if (r.used) return this.askNow(key, argv, input);
      throw e;
    }
  }

  /** The kept reader for `argv`, started now if there is none or it is in another namespace than the path's. */
  private reader(key: string, argv: readonly string[]): Kept {
    const r = this.kept.get(key);
    if (r && this.inNamespace(r.tool.pid)) return r;
    if (r) this.drop(key, r);
    const fresh: Kept = { tool: start(argv, { netns: this.netns }), used: false };
    this.kept.set(key, fresh);
    return fresh;
  }

  private drop(key: string, r: Kept): void {
    r.tool.cancel();
    if (this.kept.get(key) === r) this.kept.delete(key);
  }

  /** Without a path the readers are in our own namespace, always; nsenter execs the tool, so its pid is the tool's. */
  private inNamespace(pid: number | undefined): boolean {
    if (!this.netns) return true;
    try {
      return statSync(this.netns).ino === statSync(`/proc/${pid}/ns/net`).ino;
    } catch {
      return false;
    }
  }
}
