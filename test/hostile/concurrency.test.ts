/**
 * Many pods at once on one node, as a busy runtime does it: 50 parallel ADDs, then 50 parallel
 * DELs, through the whole chain (bridge + host-local + tenant-egress with enforcement, which
 * adds and removes chains in one nftables table of the node's namespace), five times over. Every call must succeed, none may
 * have waited on or failed for a lock, and nothing may be left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cnitool, type Network, writeBridgeConflist } from "../../src/lab/cni-client.js";
import { leftovers } from "../../src/lab/leftovers.js";
import { createLab, type Lab, uniquePrefix } from "../../src/lab/topology.js";

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
      const left = await leftovers(lab, net, pods);
      expect({ round, left }).toEqual({ round, left: [] });
    }
  });
});
