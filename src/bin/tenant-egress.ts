/**
 * tenant-egress: the CNI chained plugin. Thin main: wires the verbs to the skel.
 *
 * Why the order: a verb's first step is reading the pod's namespace, one session per family
 * (nsenter + sh hosting ip, the -save tool and the -restore that will apply, src/net/session.ts)
 * whose start-up is most of its cost, and on the node the attachment's enforcement chain (one
 * nft; and the veths when enforcing). They are started here, right after stdin is read (a
 * prevResult without IPv6 needs no IPv6 readers) and before the verbs and their validators are
 * even loaded (those are imported lazily below), so that loading and parsing the configuration
 * overlap them. Only ADD, CHECK and DEL start them, the pod's only into a path that is a
 * namespace file, and the tools only read; everything that writes still waits for the verb's own
 * checks of CNI_NETNS.
 */
import { readFileSync } from "node:fs";
import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import { mayHoldIpv6 } from "../cni/families.js";
import { isNamespaceFile } from "../net/netns.js";
import { EVERY_TABLE, type NodeReads, type Pending, startNodeReads, startObserve } from "../net/observe.js";
import { trace } from "../net/trace.js";
import type { EarlyReads } from "../pod/commands.js";
import { ENFORCE_TABLE, enforceNames } from "../pod/names.js";

const VERSION = "0.1.0";

/** The network configuration as far as the early reads need it; not even JSON yet (the skel reports that). */
function rawConf(stdin: string): { name?: unknown; prevResult?: unknown; enforce?: unknown } {
  try {
    const conf = JSON.parse(stdin) as unknown;
    return typeof conf === "object" && conf !== null ? conf : {};
  } catch {
    return {};
  }
}

/** Gives a read once (the verb takes it); what no verb took is cancelled at the end. */
function once<T extends Pending<unknown>>(pending: T | undefined, all: Array<Pending<unknown>>): () => T | undefined {
  if (pending) all.push(pending);
  return () => {
    const taken = pending;
    pending = undefined;
    if (taken) all.splice(all.indexOf(taken), 1);
    return taken;
  };
}

/** A read given only to the verb that asks for the same chain (and veths or not). */
function keyed<T>(key: string, take: () => T | undefined): (chain: string, withVeths: boolean) => T | undefined {
  return (chain, withVeths) => (`${chain} ${withVeths}` === key ? take() : undefined);
}

/** The node's reads as one pending read, to be cancelled together when no verb takes them. */
function nodeReads(r: NodeReads): NodeReads & Pending<unknown> {
  return {
    ...r,
    read: () => r.nft.read(),
    cancel: () => {
      r.nft.cancel();
      r.veths?.cancel();
    },
  };
}

/**
 * The reads every such verb starts with: the pod's namespace; on the node, the attachment's
 * enforcement chain (DEL always removes it, whatever the configuration says now) and,
 * when enforcing, the veths (to find the pod's host side).
 */
function readEarly(env: NodeJS.ProcessEnv, stdin: string): EarlyReads & { cancel(): void } {
  const verb = env.CNI_COMMAND;
  const netns = env.CNI_NETNS ?? "";
  const conf = rawConf(stdin);
  const attached = verb === "ADD" || verb === "CHECK" || verb === "DEL";
  const enforcing = (verb === "ADD" || verb === "CHECK") && conf.enforce === true;
  const all: Array<Pending<unknown>> = [];
  // The attachment's chain as the verb will name it (the verb checks the names; a read of another is unused).
  const chain = enforceNames(
    typeof conf.name === "string" ? conf.name : "",
    env.CNI_CONTAINERID ?? "",
    env.CNI_IFNAME ?? "",
  ).chain;
  const early = {
    pod: once(
      attached && isNamespaceFile(netns)
        ? startObserve(netns, EVERY_TABLE, { ipv6: mayHoldIpv6(conf.prevResult), keep: verb !== "CHECK" })
        : undefined,
      all,
    ),
    node: keyed(
      `${chain} ${enforcing}`,
      once(verb === "DEL" || enforcing ? nodeReads(startNodeReads(ENFORCE_TABLE, chain, enforcing)) : undefined, all),
    ),
  };
  const cancel = () => {
    for (const p of all.splice(0)) p.cancel();
  };
  return { ...early, cancel };
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

/**
 * The configuration, read to its end. Runtimes hand it over as a blocking pipe, which one
 * synchronous read takes without setting up process.stdin's stream; a non-blocking stdin
 * (EAGAIN) is read as a stream.
 */
async function readStdin(): Promise<string> {
  try {
    return readFileSync(0, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function main(): Promise<number> {
  const stdin = process.env.CNI_COMMAND ? await readStdin() : "";
  trace(`${process.env.CNI_COMMAND ?? "no verb"}: configuration read`);
  const early = readEarly(process.env, stdin);
  const [{ dispatch }, { cmdAdd, cmdCheck, cmdDel, cmdGc, cmdStatus }] = await Promise.all([
    import("../cni/skel.js"),
    import("../pod/commands.js"),
  ]);
  trace("verbs loaded");
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
    early.cancel();
  }
}

// Exit at once: the result is written (stdout and stderr are synchronous for pipes and files),
// the tools have ended or need nothing more, and tearing down V8's heap first only delays the runtime.
void main().then((code) => {
  trace(`done, exit ${code}`);
  process.exit(code);
});
