/**
 * Runs the built plugin directly, the way libcni runs one plugin of a chain, and snapshots a
 * namespace's network state for before/after comparisons.
 */
import { resolve } from "node:path";
import { run } from "../../src/net/run.js";

export const PLUGIN = resolve("dist/tenant-egress");

export async function runPlugin(node: string, netns: string, command: string, conf: unknown, extraEnv: Record<string, string> = {}) {
  return run([PLUGIN], {
    netns: `/run/netns/${node}`,
    env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: "c0ffee", CNI_NETNS: netns, CNI_IFNAME: "eth0", CNI_PATH: "/usr/lib/cni", ...extraEnv },
    input: JSON.stringify(conf),
    allowFailure: true,
  });
}

/** Everything about a namespace's network that a plugin could change, as comparable text. */
export async function namespaceSnapshot(ns: string): Promise<string> {
  const ip = await run(["ip", "-n", ns, "-d", "-batch", "-"], { input: "link show\naddr show\nrule show\nroute show table all\n" });
  const ipt = await run(["ip", "netns", "exec", ns, "iptables-save"]);
  // Rules and user chains only: an empty table that iptables-nft leaves behind holds nothing.
  const rules = ipt.stdout.split("\n").filter((l) => l.startsWith("-A ") || (l.startsWith(":") && !/^:[A-Z]+ (ACCEPT|DROP)/.test(l)));
  const sysctl = await run(["ip", "netns", "exec", ns, "sh", "-c", "cat /proc/sys/net/ipv4/conf/*/rp_filter /proc/sys/net/ipv4/ip_forward"]);
  return `${ip.stdout}\n${rules.join("\n")}\n${sysctl.stdout}`;
}
