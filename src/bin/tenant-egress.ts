/**
 * tenant-egress: the CNI chained plugin. Thin main: wires the verbs to the skel.
 *
 * Why the order: a verb's first step is reading the pod's namespace, which takes two processes
 * (nsenter + ip, nsenter + iptables-save) whose start-up is most of their cost. They are
 * started here, before the verbs and their validators are even loaded (those are imported
 * lazily below), so that loading, reading stdin and parsing the configuration overlap them.
 * Only ADD, CHECK and DEL start them, only into a path that is a namespace file, and the tools
 * only read; everything that writes still waits for the verb's own checks of CNI_NETNS.
 */
import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import { isNamespaceFile } from "../net/netns.js";
import { type PendingObservation, startObserve } from "../net/observe.js";

const VERSION = "0.1.0";

function observeEarly(env: NodeJS.ProcessEnv): () => PendingObservation | undefined {
  const verb = env.CNI_COMMAND;
  const netns = env.CNI_NETNS ?? "";
  let pending =
    (verb === "ADD" || verb === "CHECK" || verb === "DEL") && isNamespaceFile(netns) ? startObserve(netns) : undefined;
  return () => {
    const taken = pending;
    pending = undefined;
    return taken;
  };
}

async function onPath(tool: string): Promise<boolean> {
  const dirs = (process.env.PATH || "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(":");
  for (const dir of dirs) {
    try {
      await access(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function main(): Promise<number> {
  const early = observeEarly(process.env);
  const [{ dispatch }, { cmdAdd, cmdCheck, cmdDel, cmdGc, cmdStatus }] = await Promise.all([
    import("../cni/skel.js"),
    import("../pod/commands.js"),
  ]);
  type Ctx = Parameters<typeof cmdAdd>[0];
  const inv = (ctx: Pick<Ctx, "env" | "conf" | "stdin">): Ctx => ({ ...ctx, processEnv: process.env, early });
  try {
    return await dispatch(
      "tenant-egress",
      VERSION,
      {
        ADD: (ctx) => cmdAdd(inv(ctx)),
        DEL: (ctx) => cmdDel(inv(ctx)),
        CHECK: (ctx) => cmdCheck(inv(ctx)),
        GC: (ctx) => cmdGc(inv(ctx)),
        STATUS: (ctx) => cmdStatus(inv(ctx), onPath),
      },
      {
        env: process.env,
        readStdin,
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
      },
    );
  } finally {
    // A verb that never looked (no gateway for the pod, an invalid config) ends the readers.
    early()?.cancel();
  }
}

void main().then((code) => {
  process.exitCode = code;
});
