/**
 * tenant-egress: the CNI chained plugin. Thin main: wires the verbs to the skel.
 */
import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import { dispatch } from "../cni/skel.js";
import { cmdAdd, cmdCheck, cmdDel, cmdGc, cmdStatus, type Invocation } from "../pod/commands.js";

const VERSION = "0.1.0";

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

const inv = (ctx: { env: Invocation["env"]; conf: Record<string, unknown>; stdin: string }): Invocation => ({
  ...ctx,
  processEnv: process.env,
});

void dispatch(
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
).then((code) => {
  process.exitCode = code;
});
