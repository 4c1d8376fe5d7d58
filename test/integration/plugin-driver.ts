/**
 * Runs the built plugin directly, the way libcni runs one plugin of a chain.
 */
import { resolve } from "node:path";
import { run } from "../../src/net/run.js";

export const PLUGIN = resolve("dist/tenant-egress");

export async function runPlugin(
  node: string,
  netns: string,
  command: string,
  conf: unknown,
  extraEnv: Record<string, string> = {},
) {
  return run([PLUGIN], {
    netns: `/run/netns/${node}`,
    env: {
      PATH: process.env.PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: "c0ffee",
      CNI_NETNS: netns,
      CNI_IFNAME: "eth0",
      CNI_PATH: "/usr/lib/cni",
      ...extraEnv,
    },
    input: JSON.stringify(conf),
    allowFailure: true,
  });
}
