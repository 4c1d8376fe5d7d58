/**
 * Runs the built plugin directly, the way libcni runs one plugin of a chain: the one runner the
 * integration and hostile tests share. A runtime hands a plugin CNI_* variables, a PATH and the
 * network config on stdin, from the node's namespace; every test that calls the plugin without
 * cnitool (faults, hostile input, GC, a second attachment, executables without node) builds
 * that call here, so the defaults a test does not care about are the same everywhere.
 */
import { resolve } from "node:path";
import { run } from "../net/run.js";
import { REFERENCE_PLUGINS } from "./cni-client.js";

export const PLUGIN = resolve("dist/tenant-egress");

/**
 * The environment of one plugin call: an attachment (container c0ffee, eth0) and the reference
 * plugins' directory, with `over` on top; a variable set to undefined is left out (hostile tests
 * drop required ones).
 */
export function pluginEnv(over: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    CNI_CONTAINERID: "c0ffee",
    CNI_IFNAME: "eth0",
    CNI_PATH: REFERENCE_PLUGINS,
    ...over,
  };
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as NodeJS.ProcessEnv;
}

/** The plugin started in `node`'s namespace with exactly this environment and stdin. */
export function invokePlugin(node: string, env: Record<string, string | undefined>, stdin: string) {
  return run([PLUGIN], { netns: `/run/netns/${node}`, env: pluginEnv(env), input: stdin, allowFailure: true });
}

/** One CNI command for the pod namespace `netns` (a path), with the config as JSON. */
export function runPlugin(
  node: string,
  netns: string,
  command: string,
  conf: unknown,
  extraEnv: Record<string, string | undefined> = {},
) {
  return invokePlugin(node, { CNI_COMMAND: command, CNI_NETNS: netns, ...extraEnv }, JSON.stringify(conf));
}
