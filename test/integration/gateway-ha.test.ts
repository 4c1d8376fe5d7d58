/**
 * A gateway pair in the lab (src/lab/ha-scene.ts): the active fails as a node fails (every
 * process SIGKILLed, links down), comes back, and later loses only its keepalived. Each time,
 * 26 connections are open through the pair — iperf3 uploads and downloads of two tenants, a
 * keep-alive HTTP connection and an idle connection the server pushes to after the failover
 * from each of three tenants' pods — and none of them may be reset; new connections must work
 * again within 2 s; the shared and egress addresses must end up on exactly one instance; and the
 * tenants must still be shaped. Bounds are loose on purpose: the timing distributions are the
 * failover benchmark's (`npm run bench:failover`).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HaStatus } from "../../src/gateway/ha/controller.js";
import { gatewayCli } from "../../src/lab/gateway-cli.js";
import { firstNewConnection } from "../../src/lab/ha-probe.js";
import { buildHaScene, HA_TENANTS, type HaScene, iperfBackground, waitUntil } from "../../src/lab/ha-scene.js";
import { INET_IP, uniquePrefix } from "../../src/lab/topology.js";
import { httpGet, IPERF_PORTS } from "../../src/lab/traffic.js";
import { parseRate } from "../../src/net/rates.js";
import { activeAndStandby, expectNoResets, haStatus, movingHeldBy, openFlows, roleOf, startPair } from "./ha-pair.js";

let scene: HaScene;

beforeAll(async () => {
  scene = await buildHaScene(uniquePrefix("ha"));
  await startPair(scene);
}, 120_000);

afterAll(async () => {
  await scene?.teardown();
}, 60_000);

describe("a gateway pair", () => {
  it("keeps every connection through a node failure of the active, and works again within 2 s", async () => {
    const [active, standby] = await activeAndStandby(scene);
    const flows = await openFlows(scene, 8, 5);
    await new Promise((r) => setTimeout(r, 2500));
    expect((await haStatus(standby))?.replicatedConnections).toBeGreaterThanOrEqual(20);
    const t0 = await scene.killNode(active);
    const r = await flows.finish();
    expectNoResets(r);
    // Timed from the tenant no bulk flow saturates (a saturated class drops some SYNs by design).
    expect(firstNewConnection(r.probes[2]!, t0)).toBeLessThanOrEqual(2000);
    expect(await roleOf(standby)).toBe("active");
    expect(await movingHeldBy(standby)).toHaveLength(4);
  }, 60_000);

  it("shapes each tenant to its rate after the takeover", async () => {
    const globex = scene.pods.find((p) => p.tenant === "globex")!;
    const up = await iperfBackground(globex.ns, { host: INET_IP, port: IPERF_PORTS[0]!, seconds: 4 }).done;
    const down = await iperfBackground(globex.ns, { host: INET_IP, port: IPERF_PORTS[1]!, seconds: 4, reverse: true })
      .done;
    const t = HA_TENANTS.find((x) => x.name === "globex")!;
    expect(up.bps / parseRate(t.upload)!).toBeGreaterThan(0.7);
    expect(up.bps / parseRate(t.upload)!).toBeLessThan(1.05);
    expect(down.bps / parseRate(t.download)!).toBeGreaterThan(0.7);
    expect(down.bps / parseRate(t.download)!).toBeLessThan(1.05);
  }, 30_000);

  it("takes the failed instance back as standby: no second interruption, no reset", async () => {
    const [active, failed] = await activeAndStandby(scene);
    const flows = await openFlows(scene, 6, 4);
    await new Promise((r) => setTimeout(r, 1000));
    await scene.restore(failed);
    expect(await waitUntil(async () => (await roleOf(failed)) === "standby", 10_000)).toBe(true);
    const r = await flows.finish();
    expectNoResets(r);
    // Never preempted: the instance that took over keeps the role, and the addresses.
    expect(await scene.holders()).toEqual([active]);
    expect(await movingHeldBy(failed)).toEqual([]);
    expect(await waitUntil(async () => !!(await haStatus(failed))?.sync.healthy, 10_000)).toBe(true);
  }, 60_000);

  it("shows the role, the peer's last advertisement, sync health and replicated connections", async () => {
    const [active, standby] = await activeAndStandby(scene);
    const flows = await openFlows(scene, 3, 1);
    await new Promise((r) => setTimeout(r, 1500));
    const st = await gatewayCli(standby.ns, ["status", "-f", scene.file, "--interval", "0.2"]);
    expect(st.stdout).toContain(`ha: instance ${standby.name} is standby (keepalived BACKUP)`);
    expect(st.stdout).toMatch(/peer \S+: last VRRP advertisement \d+\.\d s ago at priority \d+/);
    expect(st.stdout).toMatch(/sync healthy; (\d+) replicated connections/);
    expect(Number(/sync healthy; (\d+) replicated/.exec(st.stdout)?.[1])).toBeGreaterThanOrEqual(20);
    const metrics = (await httpGet(active.ns, "http://127.0.0.1:9180/metrics")).body;
    expect(metrics).toContain(`tenant_egress_ha_role{instance="${active.name}",role="active"} 1`);
    expect(metrics).toContain(`tenant_egress_ha_addresses_held{instance="${active.name}"} 4`);
    expect(metrics).toContain(`tenant_egress_ha_sync_healthy{instance="${active.name}"} 1`);
    const page = (await httpGet(standby.ns, "http://127.0.0.1:9180/")).body;
    expect(page).toContain('<div id="ha"></div>');
    const api = JSON.parse((await httpGet(standby.ns, "http://127.0.0.1:9180/api/status")).body) as { ha: HaStatus };
    expect(api.ha).toMatchObject({ instance: standby.name, role: "standby", sync: { healthy: true } });
    expect(Date.now() - Date.parse(api.ha.peerAdvert!.at)).toBeLessThan(1000);
    expectNoResets(await flows.finish());
  }, 60_000);

  it("hands over when only the active's keepalived dies, and the old active stops forwarding", async () => {
    const [active, standby] = await activeAndStandby(scene);
    const flows = await openFlows(scene, 6, 4);
    await new Promise((r) => setTimeout(r, 2000));
    const killed = await scene.killKeepalived(active);
    expect(killed.pids).not.toEqual([]);
    const t0 = killed.at;
    // Never two holders on the way.
    let both = false;
    await waitUntil(async () => {
      both ||= (await scene.holders()).length > 1;
      return (await movingHeldBy(standby)).length === 4;
    }, 3000);
    const r = await flows.finish();
    expect(both).toBe(false);
    expectNoResets(r);
    expect(firstNewConnection(r.probes[2]!, t0)).toBeLessThanOrEqual(2000);
    expect(await movingHeldBy(active)).toEqual([]);
    // Its daemon restarted keepalived, which stays standby.
    expect(await waitUntil(async () => (await haStatus(active))?.vrrpState === "BACKUP", 10_000)).toBe(true);
    expect(await scene.holders()).toEqual([standby]);
  }, 60_000);
});
