/**
 * Which leaf qdiscs the kernel has. Module lists lie (built-ins, autoloading), so we ask the
 * kernel itself: attach each candidate to a throwaway veth inside the target namespace, keep
 * the first that works, and remove the veth. Production kernels usually have fq_codel; this
 * project must also work on kernels that have neither fq_codel nor sfq (tbf is then used).
 */
import { randomBytes } from "node:crypto";
import { run } from "./run.js";

export type LeafKind = "fq_codel" | "sfq" | "tbf";

export async function probeLeafKind(netns: string | undefined): Promise<LeafKind> {
  const dev = `teprobe${randomBytes(2).toString("hex")}`;
  await run(["ip", "link", "add", dev, "type", "veth", "peer", "name", `${dev}p`], { netns });
  try {
    for (const kind of ["fq_codel", "sfq"] as const) {
      const r = await run(["tc", "qdisc", "add", "dev", dev, "root", kind], { netns, allowFailure: true });
      if (r.exitCode === 0) return kind;
    }
    return "tbf";
  } finally {
    await run(["ip", "link", "del", dev], { netns, allowFailure: true });
  }
}
