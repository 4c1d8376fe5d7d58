/**
 * Runs the low-level network tools (ip, iptables-restore, tc, sysctl), optionally inside a
 * network namespace through nsenter, and turns a failure into a message a person can act on.
 *
 * Why nsenter: Node cannot setns(2), so every command aimed at a pod or gateway namespace is
 * `nsenter --net=<path> <tool> …`. Why stdin batches: one process per verb instead of one per
 * rule keeps a pod ADD in single-digit milliseconds of subprocess time. Arguments are passed as
 * an argv array (never a shell), so nothing from config can be interpreted as shell syntax.
 * Built on child_process rather than execa: this is on every pod operation's start-up path,
 * and loading execa costs ~45 ms there (measured: bundled `execa("true")` 80 ms vs spawn 35 ms).
 */
import { spawn } from "node:child_process";
import type { Socket } from "node:net";
import { traceProcess } from "./trace.js";

/** Where a runtime's minimal environment may not point PATH (DEL often gets almost nothing). */
const FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface RunOptions {
  /** Network namespace path; undefined runs in the current namespace. */
  netns?: string;
  /** Text written to the tool's stdin (a batch). */
  input?: string;
  /** Resolve with the failure instead of throwing (for tolerant deletes and probes). */
  allowFailure?: boolean;
  /** The child's whole environment (default: ours, with a PATH even if the runtime gave none). */
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | undefined,
    readonly stderr: string,
    readonly hint: string,
  ) {
    super(
      `${command} failed${exitCode === undefined ? "" : ` (exit ${exitCode})`}: ${stderr.trim() || "no output"}${hint ? ` — ${hint}` : ""}`,
    );
    this.name = "CommandError";
  }
}

/** Known failure texts → what to do about them. First match wins. */
const HINTS: Array<[RegExp, string]> = [
  [
    /^nft: command not found/,
    "enforcement needs the nft tool: install nftables (Debian package nftables) and make sure PATH reaches it",
  ],
  [
    /Could not process rule/,
    "nftables rejected the enforcement table: the kernel needs netdev-family ingress hooks (CONFIG_NF_TABLES_NETDEV, CONFIG_NETFILTER_INGRESS, module nf_tables), and the host device must exist",
  ],
  [
    /ENOENT|command not found|failed to execute \S+: No such file or directory|No such file or directory.*(ip|iptables|nsenter|tc|sysctl)\b/i,
    "a required tool is missing: install iproute2, iptables and util-linux (nsenter), and make sure PATH reaches them",
  ],
  [
    /reassociate to namespace|cannot open.*netns|setns/i,
    "the network namespace is gone or not a namespace (the pod may have been deleted)",
  ],
  [
    /Another app is currently holding the xtables lock/i,
    "another process holds the xtables lock for too long; retry, and look for a stuck iptables process",
  ],
  [
    /Couldn't load target|Couldn't load match|No chain\/target\/match by that name/i,
    "the kernel lacks an iptables extension this rule needs (check MARK, TCPMSS, SNAT, CLASSIFY modules)",
  ],
  [
    /File exists/i,
    "an object of the same name or key already exists and is not ours; remove it or change the configuration",
  ],
  [
    /Operation not supported|Unknown device type|Error: Unknown qdisc/i,
    "the kernel lacks a feature this needs (vxlan, htb, …); load the module or use a kernel that has it",
  ],
  [/Operation not permitted|Permission denied/i, "this needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for nsenter)"],
  [
    /Cannot find device|does not exist/i,
    "a device this needs does not exist; check the interface names in the configuration",
  ],
];

export function hintFor(stderr: string): string {
  return HINTS.find(([re]) => re.test(stderr))?.[1] ?? "";
}

export async function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return start(argv, options).finish(options.input ?? "");
}

/** A tool already running, waiting for its stdin (see `start`). */
export interface Started {
  /** Writes `input`, closes stdin and waits for the tool; throws as `run` does. Its stdout: what no `ask` took. */
  finish(input: string): Promise<RunResult>;
  /**
   * Writes `input` and keeps stdin open; resolves with what the tool printed since the last
   * `ask` once that holds `lines` lines. For a tool that answers each line of a batch as it
   * reads it (`ip -json -batch -`), so the same process can later `finish` with more lines.
   * Until then it does not keep this process alive: if nothing finishes it, it reads EOF at
   * our exit and ends without doing anything more. Throws as `run` does if the tool exits first.
   */
  ask(input: string, lines: number): Promise<string>;
  /** The tool is not needed after all: ends it (it only ever reads). */
  cancel(): void;
  /** Its process id (undefined if it could not be started). */
  readonly pid: number | undefined;
}

/**
 * Starts a tool now and gives it its input later: process start-up (nsenter, the tool's own
 * loading) then overlaps whatever the caller still has to do before it knows the input.
 */
export function start(argv: readonly string[], options: Omit<RunOptions, "input"> = {}): Started {
  const full = options.netns ? ["nsenter", `--net=${options.netns}`, "--", ...argv] : [...argv];
  const [file, ...args] = full as [string, ...string[]];
  const spawnStarted = performance.now();
  const child = spawn(file, args, { env: toolEnv(options.env), stdio: ["pipe", "pipe", "pipe"] });
  let spawnError = "";
  child.on("error", (e: NodeJS.ErrnoException) => {
    spawnError = e.code === "ENOENT" ? `${file}: command not found (ENOENT)` : e.message;
  });
  const exited = new Promise<{ code: number; why: string }>((resolve) => {
    child.on("close", (code, signal) =>
      resolve({ code: code ?? -1, why: spawnError + (signal ? `killed by ${signal}` : "") }),
    );
  });
  traceProcess(full, spawnStarted, exited);
  const tool = collect(
    { stdin: child.stdin, stdout: child.stdout, stderr: child.stderr },
    exited,
    // With stdio "pipe" each is a net.Socket, which (unlike the stream types it is declared as) can be unref'd.
    [child, ...([child.stdin, child.stdout, child.stderr] as unknown as Socket[])],
    () => child.kill("SIGKILL"),
    child.pid,
  );
  return started(tool, argv, options);
}

/** A child's environment: the given one, or ours with a PATH even if the runtime gave none. */
export function toolEnv(env: NodeJS.ProcessEnv | undefined): NodeJS.ProcessEnv {
  return env ?? (process.env.PATH ? process.env : { ...process.env, PATH: FALLBACK_PATH });
}

/** What `collect` gives: a tool's output once it is done; never rejects. */
export interface Collected {
  finish(input: string): Promise<RunResult>;
  ask(input: string, lines: number): Promise<string | undefined>;
  cancel(): void;
  readonly pid: number | undefined;
}

/** Something that keeps this process alive while referenced (a child, a socket). */
export interface Handle {
  ref(): void;
  unref(): void;
}

/** Handles shared by several tools: referenced while any of them is waited for. */
export function counted(handles: readonly Handle[]): Handle {
  let waiters = 0;
  return {
    ref() {
      if (waiters++ === 0) for (const h of handles) h.ref();
    },
    unref() {
      if (--waiters === 0) for (const h of handles) h.unref();
    },
  };
}

/** A collected tool as callers see it: its failures thrown as CommandErrors naming it. */
export function started(tool: Collected, argv: readonly string[], options: Omit<RunOptions, "input">): Started {
  const failure = (result: RunResult) =>
    new CommandError(
      describe(argv, options.netns),
      result.exitCode < 0 ? undefined : result.exitCode,
      result.stderr,
      hintFor(result.stderr),
    );
  return {
    async finish(input) {
      const result = await tool.finish(input);
      if (result.exitCode !== 0 && !options.allowFailure) throw failure(result);
      return result;
    },
    async ask(input, lines) {
      const answer = await tool.ask(input, lines);
      if (answer !== undefined) return answer;
      // It exited before answering: its status and stderr say why.
      const result = await tool.finish("");
      throw failure(
        result.exitCode === 0 ? { ...result, exitCode: -1, stderr: `${result.stderr}exited before answering` } : result,
      );
    },
    cancel: tool.cancel,
    pid: tool.pid,
  };
}

/**
 * Collects a tool's outputs (either may be absent: a tool sent elsewhere) once `finish` has
 * written its input, until `exited` says it is done: the process's own end, or its status from
 * the shell that ran it (session.ts). `handles` keep this process alive only while someone
 * waits for the tool (each is referenced once per waiter, see `counted`): a kept reader (`ask`)
 * must not hold up our exit.
 */
export function collect(
  io: {
    stdin?: NodeJS.WritableStream & { end(s: string): void };
    stdout?: NodeJS.ReadableStream;
    stderr: NodeJS.ReadableStream;
  },
  exited: Promise<{ code: number; why: string }>,
  handles: readonly Handle[],
  kill: () => void,
  pid: number | undefined,
): Collected {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  /**
   * `out` holds only what no `ask` has taken (a kept reader answers for as long as it lives),
   * with the number of lines it holds; and the pending `ask`. A newline byte is never part of a
   * multi-byte character, so lines are counted in the raw bytes.
   */
  let lines = 0;
  let waiting: { lines: number; resolve(text: string | undefined): void } | undefined;
  let closed = false;
  const answer = () => {
    if (!waiting || lines < waiting.lines) return;
    const all = Buffer.concat(out);
    let end = -1;
    for (let n = 0; n < waiting.lines; n++) end = all.indexOf(10, end + 1);
    out.length = 0;
    // A copy: a view would keep the whole answer's memory alive for as long as the reader lives.
    if (end + 1 < all.length) out.push(Buffer.from(all.subarray(end + 1)));
    lines -= waiting.lines;
    const w = waiting;
    waiting = undefined;
    w.resolve(all.subarray(0, end + 1).toString("utf8"));
  };
  const ended = (s: NodeJS.ReadableStream | undefined) =>
    new Promise<void>((resolve) => (s ? s.on("close", () => resolve()) : resolve()));
  io.stdout?.on("data", (d: Buffer) => {
    out.push(d);
    for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) lines++;
    answer();
  });
  io.stderr.on("data", (d: Buffer) => err.push(d));
  io.stdin?.on("error", () => {
    // The tool may exit before reading all input; its exit status says what went wrong.
  });
  const hold = () => {
    for (const h of handles) h.ref();
  };
  const release = () => {
    for (const h of handles) h.unref();
  };
  const done = Promise.all([exited, ended(io.stdout), ended(io.stderr)]).then(([{ code, why }]) => {
    closed = true;
    waiting?.resolve(undefined);
    waiting = undefined;
    return {
      stdout: Buffer.concat(out).toString("utf8"),
      stderr: Buffer.concat(err).toString("utf8") + why,
      exitCode: code,
    };
  });
  return {
    finish(input) {
      hold();
      io.stdin?.end(input);
      return done.finally(release);
    },
    ask(input, lines) {
      // Referenced while an answer is awaited: a later question to a kept reader must keep us alive until answered.
      const reply = new Promise<string | undefined>((resolve) => {
        if (closed) resolve(undefined);
        else waiting = { lines, resolve };
      });
      hold();
      if (!closed) io.stdin?.write(input);
      answer();
      return reply.finally(release);
    },
    cancel() {
      io.stdin?.end("");
      kill();
    },
    pid,
  };
}

function describe(argv: readonly string[], netns: string | undefined): string {
  return `${argv.join(" ")}${netns ? ` (in netns ${netns})` : ""}`;
}
