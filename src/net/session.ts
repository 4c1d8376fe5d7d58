/**
 * Several tools in one network namespace (another, or this process's own), started by one process. Why: `spawn` forks this whole
 * process and waits for the child's exec, a stall of the plugin's only thread that grows with
 * its heap, and each tool in a pod's namespace adds an nsenter. A verb's tools there (the
 * readers, and the iptables-restore that will apply, started before its input is known) are
 * started as one `nsenter --net=NS -- /bin/sh -c SCRIPT`, and the shell, a small process, forks
 * them.
 *
 * Safety: the script is made of the tools' argv only, every argument a plain word (checked:
 * letters, digits and `_.,:=/+-`), so nothing needs quoting, and nothing from a configuration
 * or a runtime reaches the shell: the tools' inputs and outputs are pipes, as with `start`.
 * Each tool has descriptors of its own: the one that reads a batch runs in the foreground on
 * the shell's fd 0 (a background job's stdin is /dev/null), the others' pipes are fds 3-9 (all
 * that POSIX sh redirects), and each tool's exit status comes back on the shell's stdout as a
 * line "INDEX STATUS".
 */
import { spawn } from "node:child_process";
import type { Socket } from "node:net";
import { collect, counted, type Handle, type RunOptions, type Started, started, toolEnv } from "./run.js";
import { trace, traceProcess } from "./trace.js";

export interface SessionTool {
  argv: readonly string[];
  /** It reads a batch on stdin (else stdin is /dev/null). */
  input?: boolean;
  /** What it prints is wanted (else stdout joins its stderr). */
  output?: boolean;
}

const WORD = /^[A-Za-z0-9_.,:=/+-]+$/;
/** POSIX sh redirects single-digit descriptors; 0-2 are the shell's. */
const LAST_FD = 9;

interface Placed {
  tool: SessionTool;
  stdin?: number;
  stdout?: number;
  stderr: number;
}

/** Gives each tool its descriptors: the first that reads a batch gets fd 0, the rest come from 3 up. */
function place(tools: readonly SessionTool[]): Placed[] {
  let next = 3;
  const fd = () => {
    if (next > LAST_FD) throw new Error(`${tools.length} tools need more descriptors than one shell redirects`);
    return next++;
  };
  const foreground = tools.findIndex((t) => t.input);
  return tools.map((tool, i) => ({
    tool,
    ...(tool.input ? { stdin: i === foreground ? 0 : fd() } : {}),
    ...(tool.output ? { stdout: fd() } : {}),
    stderr: fd(),
  }));
}

/** The shell script that runs the placed tools: constant for a given list of argv. */
export function sessionScript(placed: readonly Placed[]): string {
  for (const { tool } of placed)
    for (const arg of tool.argv) if (!WORD.test(arg)) throw new Error(`not a plain word for a session: ${arg}`);
  const fdsOf = (p: Placed) => [p.stdin, p.stdout, p.stderr].filter((f): f is number => f !== undefined && f > 0);
  const all = placed.flatMap(fdsOf);
  const close = (fds: number[]) => fds.map((f) => `${f}>&-`).join(" ");
  const command = (p: Placed) =>
    [
      ...p.tool.argv,
      p.stdin === undefined ? "</dev/null" : p.stdin > 0 ? `<&${p.stdin}` : "",
      `>&${p.stdout ?? p.stderr}`,
      `2>&${p.stderr}`,
      close(fdsOf(p)),
    ]
      .filter((w) => w !== "")
      .join(" ");
  const fg = placed.findIndex((p) => p.stdin === 0);
  const lines = placed.flatMap((p, i) => {
    if (i === fg) return [];
    const others = all.filter((f) => !fdsOf(p).includes(f));
    return [`{ ${others.length ? `exec ${close(others)}; ` : ""}${command(p)}; echo "${i} $?"; } &`];
  });
  if (fg >= 0) {
    const p = placed[fg]!;
    const others = all.filter((f) => !fdsOf(p).includes(f));
    if (others.length) lines.push(`exec ${close(others)}`);
    lines.push(`${command(p)}; echo "${fg} $?"`, `exec ${close(fdsOf(p))}`);
  } else {
    lines.push(`exec ${close(all)}`);
  }
  lines.push("wait");
  return lines.join("\n");
}

/**
 * Starts `tools` in `netns` (undefined: this one, without nsenter) together; each is then used as
 * `start`'s result is. A tool the shell cannot find fails with status 127, named as `start`
 * names one that is not on PATH.
 */
export function startSession(
  netns: string | undefined,
  tools: readonly SessionTool[],
  options: Pick<RunOptions, "env" | "allowFailure"> = {},
): Started[] {
  const placed = place(tools);
  const width = Math.max(2, ...placed.flatMap((p) => [p.stdin ?? 0, p.stdout ?? 0, p.stderr])) + 1;
  const stdio = Array.from({ length: width }, (_, fd) =>
    fd === 0 && !placed.some((p) => p.stdin === 0) ? "ignore" : "pipe",
  );
  const spawnStarted = performance.now();
  const shell = ["/bin/sh", "-c", sessionScript(placed)];
  const [file, ...args] = (netns ? ["nsenter", `--net=${netns}`, "--", ...shell] : shell) as [string, ...string[]];
  const child = spawn(file, args, {
    env: toolEnv(options.env),
    stdio: stdio as Array<"pipe" | "ignore">,
  });
  const pipe = (fd: number | undefined) => (fd === undefined ? undefined : (child.stdio[fd] as unknown as Socket));
  let spawnError = "";
  child.on("error", (e: NodeJS.ErrnoException) => {
    spawnError = e.code === "ENOENT" ? `${file}: command not found (ENOENT)` : e.message;
  });
  const shellErr: Buffer[] = [];
  child.stderr!.on("data", (d: Buffer) => shellErr.push(d));
  const statuses = new Map<number, (code: number) => void>();
  let pending = "";
  child.stdout!.on("data", (d: Buffer) => {
    pending += d.toString("utf8");
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      const [index, code] = pending.slice(0, nl).split(" ").map(Number) as [number, number];
      pending = pending.slice(nl + 1);
      statuses.get(index)?.(code);
    }
  });
  // The shell gone without a tool's status (nsenter could not enter, the shell was killed): its own words say why.
  const shellDone = new Promise<{ code: number; why: string }>((resolve) =>
    child.on("close", (code, signal) =>
      resolve({
        code: code ?? -1,
        why: Buffer.concat(shellErr).toString("utf8") + spawnError + (signal ? `killed by ${signal}` : ""),
      }),
    ),
  );
  traceProcess([`session of ${tools.map((t) => t.argv[0]).join(", ")}`], spawnStarted, shellDone);
  // Referenced only while a tool is waited for: a kept reader or an unused restorer must not hold up our exit.
  const sockets = child.stdio.filter((s) => s !== null) as unknown as Socket[];
  for (const h of [child, ...sockets]) h.unref();
  const shared: Handle = counted([child, child.stdout as unknown as Socket, child.stderr as unknown as Socket]);
  return placed.map((p, i) => {
    const exited = Promise.race([
      new Promise<{ code: number; why: string }>((resolve) =>
        statuses.set(i, (code) =>
          resolve({
            code,
            why: code === 127 ? `${p.tool.argv[0]}: command not found` : "",
          }),
        ),
      ),
      shellDone,
    ]);
    void exited.then(() => trace(`ended ${p.tool.argv.join(" ")} (in the session)`));
    const [stdin, stdout, stderr] = [pipe(p.stdin), pipe(p.stdout), pipe(p.stderr)!];
    const tool = collect(
      { ...(stdin ? { stdin } : {}), ...(stdout ? { stdout } : {}), stderr },
      exited,
      [shared, ...[stdin, stdout, stderr].filter((s): s is Socket => s !== undefined)],
      // Nothing to kill: the shell's tools end when their input does.
      () => {},
      // The shell's: it is in the namespace its tools are.
      child.pid,
    );
    return started(tool, p.tool.argv, {
      ...(netns ? { netns } : {}),
      ...(options.allowFailure ? { allowFailure: true } : {}),
    });
  });
}
