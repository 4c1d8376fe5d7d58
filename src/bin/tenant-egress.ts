/**
 * tenant-egress: the CNI chained plugin. Thin main: wires the verbs to the skel.
 *
 * Why the order: a verb's first step is reading the pod's namespace, which takes up to four
 * processes (nsenter + ip, nsenter + iptables-save, and the same two for IPv6) whose start-up is
 * most of their cost. They are started here, right after stdin is read (a prevResult without
 * IPv6 needs no IPv6 readers) and before the verbs and their validators are even loaded (those
 * are imported lazily below), so that loading and parsing the configuration overlap them. Only
 * ADD, CHECK and DEL start them, only into a path that is a namespace file, and the tools only
 * read; everything that writes still waits for the verb's own checks of CNI_NETNS.
 */
import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import { mayHoldIpv6 } from "../cni/families.js";
import { isNamespaceFile } from "../net/netns.js";
import { EVERY_TABLE, type PendingObservation, startObserve } from "../net/observe.js";

const VERSION = "0.1.0";

/** The prevResult of a configuration that may not even be JSON yet (the skel reports that). */
function rawPrevResult(stdin: string): unknown {
  try {
    return (JSON.parse(stdin) as { prevResult?: unknown } | null)?.prevResult;
  } catch {
    return undefined;
  }
}

function observeEarly(env: NodeJS.ProcessEnv, stdin: string): () => PendingObservation | undefined {
  const verb = env.CNI_COMMAND;
  const netns = env.CNI_NETNS ?? "";
  let pending =
    (verb === "ADD" || verb === "CHECK" || verb === "DEL") && isNamespaceFile(netns)
      ? startObserve(netns, EVERY_TABLE, { ipv6: mayHoldIpv6(rawPrevResult(stdin)) })
      : undefined;
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
  const stdin = process.env.CNI_COMMAND ? await readStdin() : "";
  const early = observeEarly(process.env, stdin);
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
        readStdin: async () => stdin,
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
