/**
 * A gateway pair (src/lab/ha-scene.ts) whose instances both stay up while something between or
 * under them breaks, and whose configuration changes while it runs. VRRP cut between the two
 * while the sync link works: a split brain, which must end with the instance that was active
 * first still forwarding and the other out of the election, and move no role when it heals. The
 * sync link cut: no role moves. The active's tunnel device or uplink goes down: it gives the role
 * up, and takes it back from no one when the device comes back. A tenant added and a rate changed:
 * both instances apply it, the role stays, no open connection is reset, and the new tenant works
 * through the shared address after a failover too. Under 26 open connections each time (as in
 * gateway-ha.test.ts), none of which may be reset.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { firstNewConnection } from "../../src/lab/ha-probe.js";
import {
  buildHaScene,
  HA_TENANTS,
  type HaScene,
  type HaTenant,
  type Instance,
  waitUntil,
} from "../../src/lab/ha-scene.js";
import { INET_IP, ipIn, uniquePrefix } from "../../src/lab/topology.js";
import { HTTP_PORT, httpGet } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";
import {
  activeAndStandby,
  expectNoResets,
  type FlowResults,
  haStatus,
  movingHeldBy,
  openFlows,
  roleOf,
  startPair,
} from "./ha-pair.js";

let scene: HaScene;

beforeAll(async () => {
  scene = await buildHaScene(uniquePrefix("hf"));
  await startPair(scene);
}, 120_000);

afterAll(async () => {
  await scene?.teardown();
}, 60_000);

/** Samples who holds the shared address every 50 ms for `ms`: how long both did, and whether anyone but `only` ever held it alone. */
async function watchHolders(ms: number, only: Instance) {
  let bothMs = 0;
  let otherSamples = 0;
  let last = Date.now();
  const until = last + ms;
  while (Date.now() < until) {
    const h = await scene.holders();
    const now = Date.now();
    if (h.length > 1) bothMs += now - last;
    else if (h[0] !== only) otherSamples++;
    last = now;
    await sleep(50);
  }
  return { bothMs, otherSamples };
}

describe("a gateway pair whose instances stay up", () => {
  it("settles a split brain (VRRP cut, sync link working) for the instance that was active first, and moves no role when it heals", async () => {
    const [active, standby] = await activeAndStandby(scene);
    const transitions = (await haStatus(active))!.transitions;
    const flows = await openFlows(scene, 8, 6);
    await sleep(1500);
    await scene.cutVrrp(true);
    const seen = watchHolders(6000, active);
    // The standby hears no advertisement, becomes MASTER, and is told over the sync link that
    // the peer was active first: it steps back.
    expect(await waitUntil(async () => !!(await haStatus(standby))?.yielded, 6000)).toBe(true);
    const { bothMs, otherSamples } = await seen;
    // Loose: both may hold the addresses for a moment, if the standby's claim finishes before it hears the peer.
    expect(bothMs).toBeLessThan(2000);
    expect(otherSamples).toBe(0);
    expect(await roleOf(standby)).toBe("fault");
    expect(await movingHeldBy(standby)).toEqual([]);
    // While cut, it stays out: the peer is still active and still unheard.
    expect((await watchHolders(1500, active)).bothMs).toBe(0);
    await scene.cutVrrp(false);
    expect(
      await waitUntil(async () => {
        const s = await haStatus(standby);
        return s?.vrrpState === "BACKUP" && !s.yielded;
      }, 5000),
    ).toBe(true);
    expectNoResets(await flows.finish());
    expect(await scene.holders()).toEqual([active]);
    expect(await roleOf(active)).toBe("active");
    expect((await haStatus(active))!.transitions).toBe(transitions);
  }, 60_000);

  it("moves no role when only the sync link is cut, and reports it unhealthy until it heals", async () => {
    const [active, standby] = await activeAndStandby(scene);
    const transitions = [(await haStatus(active))!.transitions, (await haStatus(standby))!.transitions];
    await scene.cutSync(true);
    const seen = watchHolders(5000, active);
    expect(await waitUntil(async () => (await haStatus(standby))?.sync.healthy === false, 6000)).toBe(true);
    expect(await seen).toEqual({ bothMs: 0, otherSamples: 0 });
    await scene.cutSync(false);
    expect(await waitUntil(async () => !!(await haStatus(standby))?.sync.healthy, 10_000)).toBe(true);
    // Connections opened after the heal are replicated again.
    const flows = await openFlows(scene, 4, 2);
    expect(await waitUntil(async () => ((await haStatus(standby))?.replicatedConnections ?? 0) >= 20, 3000)).toBe(true);
    expectNoResets(await flows.finish());
    expect(await scene.holders()).toEqual([active]);
    expect([(await haStatus(active))!.transitions, (await haStatus(standby))!.transitions]).toEqual(transitions);
  }, 60_000);

  for (const [what, dev] of [
    ["a tunnel device", "tev300"],
    ["its uplink", "eth0"],
  ] as const)
    it(`hands over when the active loses ${what}, and takes the role back from no one when it returns`, async () => {
      const [active, standby] = await activeAndStandby(scene);
      const flows = await openFlows(scene, 6, 4);
      await sleep(2000);
      await ipIn(active.ns, [`link set ${dev} down`]);
      const t0 = Date.now();
      let r: FlowResults;
      try {
        expect(await waitUntil(async () => (await movingHeldBy(standby)).length === 4, 5000)).toBe(true);
        expect(await waitUntil(async () => (await roleOf(active)) === "fault", 5000)).toBe(true);
        expect(await movingHeldBy(active)).toEqual([]);
      } finally {
        // Restored whatever happened, so the next test finds a pair (and idle iperf3 servers).
        r = await flows.finish();
        // Taking the uplink down took its default route with it, as on a node.
        await ipIn(active.ns, [`link set ${dev} up`, "route replace default via 10.23.0.1"]);
      }
      expectNoResets(r);
      expect(firstNewConnection(r.probes[2]!, t0)).toBeLessThanOrEqual(2000);
      expect(await waitUntil(async () => (await haStatus(active))?.vrrpState === "BACKUP", 10_000)).toBe(true);
      expect((await watchHolders(1500, standby)).otherSamples).toBe(0);
      expect(await scene.holders()).toEqual([standby]);
      expect(await waitUntil(async () => !!(await haStatus(active))?.sync.healthy, 10_000)).toBe(true);
    }, 60_000);

  it("applies a configuration change on both instances without moving the role or resetting a connection", async () => {
    const [active, standby] = await activeAndStandby(scene);
    const transitions = [(await haStatus(active))!.transitions, (await haStatus(standby))!.transitions];
    const hooli: HaTenant = {
      name: "hooli",
      vni: 400,
      overlaySubnet: "172.20.0.0/24",
      egress: "198.51.100.4",
      upload: "5mbit",
      download: "5mbit",
    };
    const tenants = [...HA_TENANTS.map((t) => (t.name === "globex" ? { ...t, upload: "8mbit" } : t)), hooli];
    const logged = [active, standby].map((i) => i.daemon!.lines.length);
    const flows = await openFlows(scene, 6, 4);
    await sleep(1500);
    await scene.setTenants(tenants);
    const seen = watchHolders(3000, active);
    for (const [n, i] of [active, standby].entries()) {
      // Its daemon read the file and applied it (the standby as well as the active).
      await i.daemon!.waitFor(/ file: .*generation 2\b/, 10_000, logged[n]);
      expect(
        await waitUntil(
          async () => (await run(["ip", "-n", i.ns, "link", "show", "tev400"], { allowFailure: true })).exitCode === 0,
          5000,
        ),
      ).toBe(true);
      const classes = (await run(["tc", "-n", i.ns, "class", "show", "dev", "eth0"])).stdout;
      expect(classes).toContain("rate 8Mbit");
    }
    expect(await seen).toEqual({ bothMs: 0, otherSamples: 0 });
    expectNoResets(await flows.finish());
    expect([(await haStatus(active))!.transitions, (await haStatus(standby))!.transitions]).toEqual(transitions);
    expect(await movingHeldBy(active, tenants)).toHaveLength(5);
    expect(await movingHeldBy(standby, tenants)).toEqual([]);

    // The new tenant's pod goes out through the active with its own egress address ...
    const pod = await scene.addPod(hooli);
    const url = `http://${INET_IP}:${HTTP_PORT}/`;
    expect((await httpGet(pod.ns, url, 3)).body.trim()).toBe(hooli.egress);
    // ... and through the other instance after a failover.
    await scene.killNode(active);
    expect(await waitUntil(async () => (await movingHeldBy(standby, tenants)).length === 5, 3000)).toBe(true);
    expect((await httpGet(pod.ns, url, 3)).body.trim()).toBe(hooli.egress);
  }, 60_000);
});
