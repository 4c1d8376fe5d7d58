/**
 * Many pods at once on one node, as a busy runtime does it: 50 parallel ADDs, then 50 parallel
 * DELs, through the whole chain (bridge + host-local + tenant-egress with enforcement, which
 * adds and removes chains in one nftables table of the node's namespace), five times over. Every call must succeed, none may
 * have waited on or failed for a lock, and nothing may be left behind.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cnitool, type Network, writeBridgeConflist } from "../../src/lab/cni-client.js";
import { createLab, type Lab, uniquePrefix } from "../../src/lab/topology.js";
import { run } from "../../src/net/run.js";

let lab: Lab;
let net: Network;
const PODS = 50;
const ROUNDS = 5;

beforeAll(async () => {
  lab = await createLab(uniquePrefix("c"));
  net = await writeBridgeConflist({
    name: `${lab.prefix}-net`,
    dir: lab.dir,
    egress: { gateway: "10.23.0.2", enforce: true },
  });
});

afterAll(async () => {
  await lab?.teardown();
});

describe(`${PODS} parallel ADDs and DELs, ${ROUNDS} rounds`, () => {
  // 500 chain runs (bridge + host-local + tenant-egress, each several processes) while the other
  // test files run beside it on two cores: in CI one round took ~40 s. The bound is on the
  // workload, not on a race; the test's assertions are about outcomes, never time.
  it("all succeed, no lock errors, nothing left behind", { timeout: 90_000 * ROUNDS }, async () => {
    const pods = await Promise.all(Array.from({ length: PODS }, (_, i) => lab.addPodNamespace(`c${i}`)));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const verb of ["add", "del"] as const) {
        const results = await Promise.all(pods.map((pod) => cnitool(verb, { node: lab.ns.nodeA, network: net, pod })));
        const failed = results.filter((r) => !r.ok).map((r) => r.stderr.trim() || r.stdout.trim());
        expect({ round, verb, failed }).toEqual({ round, verb, failed: [] });
        expect(results.filter((r) => /lock|temporarily unavailable/i.test(r.stderr))).toEqual([]);
      }
      const leftovers: string[] = [];
      for (const pod of pods) {
        const links = await run(["ip", "-n", pod, "-o", "link"]);
        if (/te-eth0|eth0@/.test(links.stdout)) leftovers.push(`${pod}: interfaces`);
      }
      const node = (
        await run(["ip", "netns", "exec", lab.ns.nodeA, "nft", "list", "table", "netdev", "tenant-egress"], {
          allowFailure: true,
        })
      ).stdout;
      if (/chain te-/.test(node)) leftovers.push("enforcement chains on the node");
      const ports = (
        await run(["ip", "-n", lab.ns.nodeA, "-o", "link", "show", "master", "cni0"], { allowFailure: true })
      ).stdout.trim();
      if (ports) leftovers.push(`bridge ports: ${ports.split("\n").length}`);
      const leases = (await readdir(join(lab.dir, "ipam", net.name)).catch(() => [] as string[])).filter((f) =>
        /^\d+\.\d+\.\d+\.\d+$/.test(f),
      );
      if (leases.length) leftovers.push(`${leases.length} IPAM leases`);
      expect({ round, leftovers }).toEqual({ round, leftovers: [] });
    }
  });
});
