/**
 * What a chain of DELs left behind, in words: the one check the concurrency test and the plugin
 * benchmark share. After every pod of a network is deleted, none of its namespaces may hold our
 * device or the main plugin's interface, the node may hold no enforcement chain of ours and no
 * more bridge ports than before, and host-local may hold no lease. Kept in one place so "nothing
 * left behind" means the same in a test's assertion as in a benchmark's report.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../net/run.js";
import type { Network } from "./cni-client.js";
import type { Lab } from "./topology.js";

/** Host-side veths on node-a's bridge: one per attached pod. */
export async function bridgePorts(lab: Lab): Promise<number> {
  const r = await run(["ip", "-n", lab.ns.nodeA, "-o", "link", "show", "master", "cni0"], { allowFailure: true });
  return r.stdout.split("\n").filter((l) => l.trim()).length;
}

/** Each thing left behind, or none; `portsBefore` is how many bridge ports the node had before the pods. */
export async function leftovers(lab: Lab, network: Network, pods: readonly string[], portsBefore = 0) {
  const out: string[] = [];
  for (const pod of pods) {
    const links = await run(["ip", "-n", pod, "-o", "link"]);
    if (/te-eth0|eth0@/.test(links.stdout)) out.push(`${pod}: interfaces left`);
  }
  const node = await run(["ip", "netns", "exec", lab.ns.nodeA, "nft", "list", "table", "netdev", "tenant-egress"], {
    allowFailure: true,
  });
  if (/chain te-/.test(node.stdout)) out.push("enforcement chains left on the node");
  const ports = await bridgePorts(lab);
  if (ports !== portsBefore) out.push(`${ports - portsBefore} host-side veths left on node-a`);
  const leases = (await readdir(join(lab.dir, "ipam", network.name)).catch(() => [] as string[])).filter((f) =>
    /^\d+\.\d+\.\d+\.\d+$/.test(f),
  );
  if (leases.length) out.push(`${leases.length} IPAM leases not released`);
  return out;
}
