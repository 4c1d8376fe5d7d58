/**
 * One gateway daemon per network namespace. Two daemons reconciling the same namespace would
 * undo each other's changes (each believes its own file), so `run` takes an exclusive flock on
 * a file named after the namespace's inode, under /run/tenant-egress/. flock rather than a PID
 * file: the kernel drops the lock when the process dies however it dies (kill -9 included), so a
 * crashed daemon never blocks its successor and a live one is never mistaken for a stale one.
 *
 * Node has no flock(2); flock(1) run on a descriptor this process passes it locks the open file
 * description the two share, and the lock then stays with this process's descriptor after
 * flock(1) exits.
 */
import { spawn } from "node:child_process";
import { type FileHandle, mkdir, open, stat, unlink } from "node:fs/promises";
import { join } from "node:path";

export const LOCK_DIR = "/run/tenant-egress";

export class LockedError extends Error {}

export interface NetnsLock {
  path: string;
  release(): Promise<void>;
}

function flockFd(fh: FileHandle): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn("flock", ["--nonblock", "--exclusive", "3"], { stdio: ["ignore", "ignore", "ignore", fh.fd] });
    child.on("error", () => resolve(-1));
    child.on("close", (code) => resolve(code ?? -1));
  });
}

/**
 * Locks the namespace at `netns` (default: our own); throws LockedError if a daemon holds it.
 * The holder removes the file when it stops, so a lock taken on a file that has meanwhile been
 * removed (or replaced) is no lock: take it again on the file the path names now.
 */
export async function lockNetns(netns: string | undefined, dir = LOCK_DIR): Promise<NetnsLock> {
  const ns = await stat(netns ?? "/proc/self/ns/net");
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, `gateway-netns-${ns.ino}.lock`);
  for (;;) {
    const fh = await open(path, "a+");
    const code = await flockFd(fh);
    if (code !== 0) {
      const holder = (await fh.readFile("utf8")).trim();
      await fh.close();
      if (code === 1)
        throw new LockedError(
          `another tenant-egress-gateway run serves this network namespace (lock ${path}${holder ? `, held by PID ${holder}` : ""})`,
        );
      throw new Error(`cannot lock ${path}: flock exited ${code} (is util-linux installed?)`);
    }
    const [held, named] = await Promise.all([fh.stat(), stat(path).catch(() => undefined)]);
    if (named?.ino !== held.ino) {
      await fh.close();
      continue;
    }
    await fh.truncate(0);
    await fh.write(`${process.pid}\n`, 0);
    return {
      path,
      release: async () => {
        await unlink(path).catch(() => undefined);
        await fh.close();
      },
    };
  }
}
