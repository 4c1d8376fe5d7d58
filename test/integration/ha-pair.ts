/**
 * What the pair's tests ask of a running pair (src/lab/ha-scene.ts), written once for both
 * files: an instance's status as its daemon last wrote it, which moving addresses it holds, the
 * flows that are open through the pair at each failure, and what "no connection was reset" means.
 */
import { readFile } from "node:fs/promises";
import { expect } from "vitest";
import { type HaStatus, haDir, haStatusFile } from "../../src/gateway/ha/controller.js";
import { type ProbeResult, startProbe } from "../../src/lab/ha-probe.js";
import {
  HA_TENANTS,
  type HaScene,
  type HaTenant,
  type Instance,
  iperfBackground,
  VIP,
  waitUntil,
} from "../../src/lab/ha-scene.js";
import { INET_IP } from "../../src/lab/topology.js";
import { ECHO_PORT, HTTP_PORT, IPERF_PORTS, PUSH_PORT } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";

export const haStatus = async (i: Instance): Promise<HaStatus | undefined> => {
  try {
    return JSON.parse(await readFile(haStatusFile(haDir(i.name)), "utf8")) as HaStatus;
  } catch {
    return undefined;
  }
};

export const roleOf = async (i: Instance) => (await haStatus(i))?.role;

/** The shared address and the tenants' egress addresses that `i`'s uplink carries. */
export const movingHeldBy = async (i: Instance, tenants: readonly HaTenant[] = HA_TENANTS) => {
  const out = (await run(["ip", "-n", i.ns, "-4", "-o", "address", "show", "dev", "eth0"])).stdout;
  return [VIP, ...tenants.map((t) => t.egress)].filter((a) => out.includes(` ${a}/`));
};

export type Flows = Awaited<ReturnType<typeof openFlows>>;
export type FlowResults = Awaited<ReturnType<Flows["finish"]>>;

/** Opens the flows of one failover: 4 iperf3 clients × 4 streams (+4 control) in two tenants, and a probe per pod. */
export async function openFlows(scene: HaScene, seconds: number, pushAfterS: number) {
  const [acme, globex] = scene.pods;
  const iperfs = [
    iperfBackground(acme!.ns, { host: INET_IP, port: IPERF_PORTS[0]!, seconds, streams: 4 }),
    iperfBackground(acme!.ns, { host: INET_IP, port: IPERF_PORTS[1]!, seconds, streams: 4, reverse: true }),
    iperfBackground(globex!.ns, { host: INET_IP, port: IPERF_PORTS[2]!, seconds, streams: 4 }),
    iperfBackground(globex!.ns, { host: INET_IP, port: IPERF_PORTS[3]!, seconds, streams: 4, reverse: true }),
  ];
  const probes = await Promise.all(
    scene.pods.map((p) =>
      startProbe(p.ns, { host: INET_IP, echoPort: ECHO_PORT, httpPort: HTTP_PORT, pushPort: PUSH_PORT, pushAfterS }),
    ),
  );
  return {
    async finish(): Promise<{ iperf: Awaited<(typeof iperfs)[number]["done"]>[]; probes: ProbeResult[] }> {
      const iperf = await Promise.all(iperfs.map((r) => r.done));
      return { iperf, probes: await Promise.all(probes.map((p) => p.stop())) };
    },
  };
}

export function expectNoResets(r: FlowResults) {
  for (const i of r.iperf) expect(i.error ?? "").toBe("");
  for (const p of r.probes) {
    expect(p.http.errors).toEqual([]);
    // One keep-alive connection carried every request: it survived.
    expect(p.http.sockets).toBe(1);
    expect(p.push).toEqual({ got: "push", error: "" });
  }
}

/** The instance holding the shared address, then the other; fails unless exactly one holds it. */
export async function activeAndStandby(scene: HaScene): Promise<[Instance, Instance]> {
  const holders = await scene.holders();
  expect(holders).toHaveLength(1);
  const active = holders[0]!;
  return [active, scene.instances.find((i) => i !== active)!];
}

/** Starts the first instance (it becomes active), then the second (standby), and lets the standby learn the pods. */
export async function startPair(scene: HaScene): Promise<void> {
  const [a, b] = scene.instances;
  await scene.start(a);
  expect(await waitUntil(async () => (await roleOf(a)) === "active", 10_000)).toBe(true);
  await scene.start(b);
  expect(await waitUntil(async () => (await roleOf(b)) === "standby", 10_000)).toBe(true);
  // The standby learns where the pods are before any failover (the idle push depends on it).
  for (const p of scene.pods) await run(["ip", "netns", "exec", p.ns, "ping", "-c", "1", "-W", "2", INET_IP]);
  expect(await waitUntil(async () => ((await haStatus(b))?.podsMirrored ?? 0) >= 3, 5000)).toBe(true);
}
