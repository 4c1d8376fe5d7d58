/**
 * Runs the built tenant-egress-gateway inside a lab namespace, as an operator would run it
 * inside a gateway pod, with its configuration written to the lab's scratch directory: one-shot
 * commands, and the `run` daemon as a long-lived process whose log lines a test can wait for.
 */
import { mkdir, rename, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { execa } from "execa";
import { type RunResult, run } from "../net/run.js";
import { distDir } from "./cni-client.js";

export async function gatewayCli(ns: string, args: string[]): Promise<RunResult> {
  return run(["ip", "netns", "exec", ns, join(distDir(), "tenant-egress-gateway"), ...args], { allowFailure: true });
}

/** Writes `config` and applies it; throws with the CLI's own words if it fails. */
export async function applyGateway(ns: string, dir: string, config: unknown): Promise<RunResult> {
  const file = join(dir, `${ns}-gateway.json`);
  await writeFile(file, JSON.stringify(config, null, 2));
  const r = await gatewayCli(ns, ["apply", "-f", file]);
  if (r.exitCode !== 0) throw new Error(`tenant-egress-gateway apply failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  return r;
}

export interface DaemonProcess {
  pid: number;
  /** Every line it wrote to stdout and stderr so far. */
  lines: string[];
  /** Resolves with the first line at index ≥ `from` matching `re`; rejects after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs?: number, from?: number): Promise<string>;
  signal(sig: NodeJS.Signals): void;
  /** Resolves when it has exited. */
  exited: Promise<{ exitCode: number | undefined; signal: string | undefined }>;
  /** SIGTERM (SIGKILL after 5 s); resolves once it has exited. */
  stop(): Promise<void>;
}

/** Starts `tenant-egress-gateway run …` inside `ns`; killed by PID if the test process dies. */
export function startGatewayDaemon(ns: string, args: string[]): DaemonProcess {
  const child = execa("ip", ["netns", "exec", ns, join(distDir(), "tenant-egress-gateway"), "run", ...args], {
    reject: false,
    cleanup: true,
    stdin: "ignore",
    buffer: false,
    all: true,
  });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.all! }).on("line", (l) => {
    lines.push(l);
    for (const w of waiters) w();
  });
  const exited = child.then((r) => ({ exitCode: r.exitCode, signal: r.signal }));
  return {
    pid: child.pid!,
    lines,
    waitFor(re, timeoutMs = 10_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.slice(from).find((l) => re.test(l));
          if (hit === undefined) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(`no line matching ${re} within ${timeoutMs} ms; it wrote:\n${lines.slice(from).join("\n")}`),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    signal: (sig) => void child.kill(sig),
    exited,
    async stop() {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * A directory laid out as kubelet lays out a mounted ConfigMap: FILE is a symlink into `..data`,
 * itself a symlink to a timestamped directory, and an update is an atomic rename of a new
 * `..data` link over the old one (the file is never written in place).
 */
export async function configMapDir(
  dir: string,
  key: string,
  content: unknown,
): Promise<{ file: string; update(content: unknown): Promise<void> }> {
  let version = 0;
  const update = async (c: unknown) => {
    const data = `..v${++version}`;
    await mkdir(join(dir, data));
    await writeFile(join(dir, data, key), typeof c === "string" ? c : JSON.stringify(c, null, 2));
    await symlink(data, join(dir, "..data_tmp"));
    await rename(join(dir, "..data_tmp"), join(dir, "..data"));
  };
  await mkdir(dir, { recursive: true });
  await update(content);
  await symlink(join("..data", key), join(dir, key));
  return { file: join(dir, key), update };
}
