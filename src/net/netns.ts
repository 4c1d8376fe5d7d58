/**
 * Safety checks on a network namespace path before anything runs in it. A plugin runs as root
 * in the host namespace: a CNI_NETNS that is the host's own (a runtime bug, or a reused path
 * after a crash — containernetworking/plugins#714) must be refused, never "configured".
 */
import { statfsSync } from "node:fs";
import { stat, statfs } from "node:fs/promises";

/** statfs(2) f_type of nsfs, the filesystem namespace files live on. */
const NSFS_MAGIC = 0x6e736673;

export type NetnsStatus = "present" | "absent";

export class NetnsError extends Error {}

export async function checkNetns(path: string): Promise<NetnsStatus> {
  let target: Awaited<ReturnType<typeof stat>>;
  try {
    target = await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return "absent";
    throw new NetnsError(`cannot inspect CNI_NETNS ${path}: ${(e as Error).message}`);
  }
  const fs = await statfs(path);
  if (fs.type !== NSFS_MAGIC) {
    // An unmounted bind-mount target (a netns already deleted) is an empty regular file.
    if (target.isFile() && target.size === 0) return "absent";
    throw new NetnsError(`CNI_NETNS ${path} is not a network namespace`);
  }
  const own = await stat("/proc/self/ns/net");
  if (own.ino === target.ino && own.dev === target.dev) {
    throw new NetnsError(`CNI_NETNS ${path} is the plugin's own (host) network namespace; refusing to change it`);
  }
  return "present";
}

/**
 * Whether `path` is a namespace file at all, answered at once: enough to let read-only tools
 * start inside it early. Anything that changes the namespace still waits for `checkNetns`.
 */
export function isNamespaceFile(path: string): boolean {
  try {
    return path.startsWith("/") && statfsSync(path).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}
