/**
 * Faults: the plugin killed at every step of ADD, a tool missing in the middle of ADD, and the
 * gateway restarted under open connections. Faults are injected from outside, as they happen:
 * wrappers of the tools (first in PATH) SIGKILL the plugin at the k-th event of its commands (a
 * tool starting, a restore handed its batch), and a PATH without one of the iptables tools
 * (either family) makes its step fail.
 */
import { chmod, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cni, type Network, writeBridgeConflist } from "../../src/lab/cni-client.js";
import { applyGateway, gatewayCli } from "../../src/lab/gateway-cli.js";
import { runPlugin } from "../../src/lab/plugin-runner.js";
import type { Background } from "../../src/lab/process.js";
import { netnsSnapshot, waitSettled } from "../../src/lab/snapshot.js";
import { labTenant } from "../../src/lab/tenants.js";
import { createLab, INET_IP, INET6_IP, type Lab, POD6_SUBNET, uniquePrefix } from "../../src/lab/topology.js";
import { sourceSeenBy, startInetServers } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";

/** Each is needed by every ADD: the observation reads both families' rules, the apply writes them. */
const MISSING_IPTABLES_TOOLS = ["iptables-restore", "iptables-save", "ip6tables-restore", "ip6tables-save"];

let lab: Lab;
let servers: Background;
let gw: { ns: string; ip: string; ip6: string };
let main: Network;
/** Dual stack, so an ADD also writes IPv6 rules (and a missing ip6tables-restore shows). */
let dual: Network;
const gatewayConfig = { tenants: [labTenant("red", 100, "172.16.0.0/24")] };

beforeAll(async () => {
  lab = await createLab(uniquePrefix("f"));
  servers = await startInetServers(lab.ns.inet);
  gw = await lab.addGateway("gw", 2);
  await applyGateway(gw.ns, lab.dir, gatewayConfig);
  // Networks on one bridge keep their own host-local state, so each gets its own range: the same
  // address on two pods of one bridge sends one pod's replies to the other.
  main = await writeBridgeConflist({
    name: `${lab.prefix}-main`,
    dir: lab.dir,
    range: { start: "10.22.0.10", end: "10.22.0.139" },
  });
  // Its own part of the bridge's subnet: host-local keeps one allocation state per network.
  dual = await writeBridgeConflist({
    name: `${lab.prefix}-dual`,
    dir: lab.dir,
    range: { start: "10.22.0.200", end: "10.22.0.250" },
    ipv6Subnet: POD6_SUBNET,
  });
  // Tools that SIGKILL the plugin at the KILL_AT-th event of its commands: a tool starting, or a
  // restore having been handed its whole batch (which then still applies, as it would: the
  // plugin's death does not end the tools it started).
  const killer = join(lab.dir, "killer");
  await mkdir(killer);
  const wrapper = `#!/bin/bash
tool=\${0##*/}
real=$(PATH=$REAL_PATH command -v "$tool")
# Only the plugin's own commands count: the plugin is the nearest ancestor running tenant-egress.
plugin=""; p=$PPID
while [ "$p" -gt 1 ]; do
  case "$(readlink /proc/$p/exe)" in */tenant-egress) plugin=$p; break ;; esac
  p=$(awk '{print $4}' /proc/$p/stat)
done
[ -n "$plugin" ] || exec "$real" "$@"
event() {
  exec 9>>"$COUNTER.lock"; flock 9
  n=$(( $(cat "$COUNTER" 2>/dev/null || echo 0) + 1 )); echo $n > "$COUNTER"
  flock -u 9; exec 9>&-
  [ "$n" = "$KILL_AT" ]
}
if event; then kill -KILL $plugin; exit 137; fi
case "$tool" in
  *-restore)
    batch=$(mktemp); cat > "$batch"
    if event; then kill -KILL $plugin; fi
    "$real" "$@" < "$batch"; status=$?; rm -f "$batch"; exit $status ;;
esac
exec "$real" "$@"
`;
  for (const tool of ["ip", "iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore", "nft"]) {
    await writeFile(join(killer, tool), wrapper);
    await chmod(join(killer, tool), 0o755);
  }
  // PATHs with every tool but one: an iptables tool of either family, or nft.
  const tools = [
    "ip",
    "nsenter",
    "sysctl",
    "iptables-save",
    "iptables-restore",
    "iptables",
    "ip6tables-save",
    "ip6tables-restore",
    "ip6tables",
    "nft",
    "node",
    "env",
    "tc",
  ];
  for (const lacking of [...MISSING_IPTABLES_TOOLS, "nft"]) {
    const partial = join(lab.dir, `no-${lacking}`);
    await mkdir(partial);
    for (const tool of tools.filter((t) => t !== lacking)) {
      const found = (await run(["sh", "-c", `command -v ${tool}`])).stdout.trim();
      await symlink(found, join(partial, tool));
    }
  }
});

afterAll(async () => {
  await servers?.stop();
  await lab?.teardown();
});

const conf = (prevResult: unknown) => ({
  cniVersion: "1.0.0",
  name: main.name,
  type: "tenant-egress",
  gateway: gw.ip,
  enforce: true,
  prevResult,
});

async function attachMain(name: string, network = main) {
  const pod = await lab.addPodNamespace(name);
  const prevResult = JSON.parse(await cni("add", { node: lab.ns.nodeA, network, pod })) as unknown;
  await waitSettled(pod);
  return { pod, prevResult, asMainLeftIt: await netnsSnapshot(pod) };
}

/** Counts each iptables and ip6tables rule line; a rule present twice is a bug. */
async function duplicateRules(ns: string): Promise<string[]> {
  const rules = async (tool: string) =>
    (await run(["ip", "netns", "exec", ns, tool])).stdout
      .split("\n")
      .filter((l) => l.startsWith("-A "))
      .map((l) => `${tool}: ${l}`);
  const lines = [...(await rules("iptables-save")), ...(await rules("ip6tables-save"))];
  return lines.filter((l, i) => lines.indexOf(l) !== i);
}

/** The node's enforcement chains (nftables, netdev family, one shared table). */
async function enforcementChains(): Promise<string[]> {
  const r = await run(["ip", "netns", "exec", lab.ns.nodeA, "nft", "list", "table", "netdev", "tenant-egress"], {
    allowFailure: true,
  });
  return r.stdout.match(/^\s+chain te-\S+/gm) ?? [];
}

/** More command events than an ADD of a fresh pod has; the count says when that stops holding. */
const MAX_STEPS = 12;

describe.each(["IPv4", "dual-stack"] as const)("the plugin killed at each step of ADD (%s pod)", (family) => {
  // The events are every tool an ADD starts, in the pod (observe and apply, per family) and on
  // the node (its enforcement), and each restore's batch handed over. How many there are is
  // counted, not assumed, so a kill lands at every one of them, the apply's included, whatever
  // the plugin's rounds and processes are.
  const network = () => (family === "IPv4" ? main : dual);
  const tag = family === "IPv4" ? "k4" : "k6";
  /** ADD with the counting tools first on PATH; they SIGKILL the plugin at event `killAt`. */
  const addKilledAt = (pod: string, prevResult: unknown, id: string, killAt: string) =>
    runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, "ADD", conf(prevResult), {
      PATH: `${join(lab.dir, "killer")}:${process.env.PATH}`,
      REAL_PATH: process.env.PATH,
      COUNTER: join(lab.dir, `counter-${id}-${killAt}`),
      KILL_AT: killAt,
      CNI_CONTAINERID: id,
    });
  const verb = (command: string, pod: string, prevResult: unknown, id: string) =>
    runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, command, conf(prevResult), { CNI_CONTAINERID: id });
  let steps = 0;

  it("counts the command events of an ADD", async () => {
    const id = `${tag}-count`;
    const { pod, prevResult } = await attachMain(id, network());
    expect((await addKilledAt(pod, prevResult, id, "none")).exitCode).toBe(0);
    steps = Number(await readFile(join(lab.dir, `counter-${id}-none`), "utf8"));
    process.stdout.write(`${family} ADD: ${steps} command events\n`);
    expect(steps).toBeGreaterThanOrEqual(2);
    expect(steps).toBeLessThanOrEqual(MAX_STEPS);
    expect((await verb("DEL", pod, prevResult, id)).exitCode).toBe(0);
  });

  it.each(Array.from({ length: MAX_STEPS }, (_, i) => i + 1))(
    "SIGKILL at event %i: DEL + ADD converge, nothing doubled",
    async (k) => {
      expect(steps, "the count above ran").toBeGreaterThan(0);
      const id = `${tag}-${k}`;
      const { pod, prevResult, asMainLeftIt } = await attachMain(id, network());
      if (k > steps) {
        // There is no command k: the ADD runs to its end, so the count above is exact.
        expect((await addKilledAt(pod, prevResult, id, String(k))).exitCode).toBe(0);
        expect((await verb("DEL", pod, prevResult, id)).exitCode).toBe(0);
        expect(await netnsSnapshot(pod)).toBe(asMainLeftIt);
        return;
      }
      expect((await addKilledAt(pod, prevResult, id, String(k))).exitCode).not.toBe(0);
      // The runtime's answer to a failed ADD: DEL, then (on retry) ADD again.
      expect(await verb("DEL", pod, prevResult, id)).toMatchObject({ exitCode: 0, stdout: "" });
      expect(await netnsSnapshot(pod)).toBe(asMainLeftIt);
      expect((await verb("ADD", pod, prevResult, id)).exitCode).toBe(0);
      expect((await verb("CHECK", pod, prevResult, id)).exitCode).toBe(0);
      expect(await duplicateRules(pod)).toEqual([]);
      expect(await duplicateRules(lab.ns.nodeA)).toEqual([]);
      expect(await enforcementChains()).toHaveLength(1);
      expect(await sourceSeenBy(pod)).toBe(gw.ip);
      if (family === "dual-stack") expect(await sourceSeenBy(pod, INET6_IP)).toBe(gw.ip6);
      // Killed again, then ADD without a DEL in between: still converges.
      await addKilledAt(pod, prevResult, id, String(k));
      expect((await verb("ADD", pod, prevResult, id)).exitCode).toBe(0);
      expect(await duplicateRules(pod)).toEqual([]);
      expect((await verb("DEL", pod, prevResult, id)).exitCode).toBe(0);
      expect(await netnsSnapshot(pod)).toBe(asMainLeftIt);
      expect(await enforcementChains()).toEqual([]);
    },
  );
});

describe("a step failing mid-ADD", () => {
  it.each(MISSING_IPTABLES_TOOLS)(
    "%s missing: ADD fails with code 101 naming it and both namespaces are back to before",
    async (tool) => {
      const id = `no-${tool}`;
      const { pod, prevResult, asMainLeftIt } = await attachMain(id, dual);
      await waitSettled(lab.ns.nodeA);
      const node = await netnsSnapshot(lab.ns.nodeA);
      const r = await runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, "ADD", conf(prevResult), {
        PATH: join(lab.dir, id),
        CNI_CONTAINERID: id,
      });
      expect(r.exitCode).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({
        code: 101,
        msg: expect.stringMatching(new RegExp(`${tool}.*(No such file|not found).*required tool is missing`)),
      });
      expect(await netnsSnapshot(pod)).toBe(asMainLeftIt);
      expect(await netnsSnapshot(lab.ns.nodeA)).toBe(node);
    },
  );
});

describe("enforcement on a node without nftables", () => {
  it("ADD fails naming what is missing and changes nothing; DEL without enforce still succeeds", async () => {
    const { pod, prevResult, asMainLeftIt } = await attachMain("nonft");
    await waitSettled(lab.ns.nodeA);
    const node = await netnsSnapshot(lab.ns.nodeA);
    const env = { PATH: join(lab.dir, "no-nft"), CNI_CONTAINERID: "nonft" };
    const r = await runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, "ADD", conf(prevResult), env);
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      code: 101,
      msg: expect.stringMatching(/nft.*command not found.*enforcement needs the nft tool: install nftables/),
    });
    expect(await netnsSnapshot(pod)).toBe(asMainLeftIt);
    expect(await netnsSnapshot(lab.ns.nodeA)).toBe(node);
    expect(
      await runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, "DEL", { ...conf(prevResult), enforce: false }, env),
    ).toMatchObject({ exitCode: 0, stdout: "" });
  });
});

describe("the gateway restarted under open connections", () => {
  it("new connections work right after apply; an open flow recovers on its own (time reported)", async () => {
    const chain = await writeBridgeConflist({
      name: `${lab.prefix}-chain`,
      dir: lab.dir,
      range: { start: "10.22.0.140", end: "10.22.0.199" },
      egress: { gateway: gw.ip, overlaySubnet: "172.16.0.0/24" },
    });
    const pod = await lab.addPodNamespace("restart");
    await cni("add", { node: lab.ns.nodeA, network: chain, pod });
    const seconds = 12;
    const flow = run(
      [
        "ip",
        "netns",
        "exec",
        pod,
        "iperf3",
        "-c",
        INET_IP,
        "-p",
        "5204",
        "-t",
        String(seconds),
        "-i",
        "0.1",
        "-J",
        "-b",
        "5M",
      ],
      { allowFailure: true },
    );
    await new Promise((r) => setTimeout(r, 3000));
    const restartAt = Date.now();
    expect((await gatewayCli(gw.ns, ["reset"])).exitCode).toBe(0);
    await applyGateway(gw.ns, lab.dir, gatewayConfig);
    const appliedAfter = (Date.now() - restartAt) / 1000;
    expect(await sourceSeenBy(pod)).toBe(gw.ip);
    const report = JSON.parse((await flow).stdout) as {
      error?: string;
      intervals: Array<{ sum: { start: number; bytes: number } }>;
    };
    // A rebuild stalls an open flow; it must never reset it (iperf3 then reports the closed socket).
    expect(report.error, "the open flow was reset by the rebuild").toBeUndefined();
    // The stall is the longest run of 0.1 s intervals in which nothing arrived.
    let stall = 0;
    let run0 = 0;
    for (const i of report.intervals) {
      run0 = i.sum.bytes === 0 ? run0 + 0.1 : 0;
      stall = Math.max(stall, run0);
    }
    const recovered = report.intervals.some((i) => i.sum.start > 3 + appliedAfter + 1 && i.sum.bytes > 0);
    expect(recovered, "the open flow never recovered").toBe(true);
    process.stdout.write(
      `gateway restart: reset + apply took ${appliedAfter.toFixed(2)} s; the open TCP flow's longest stall was ${stall.toFixed(1)} s\n`,
    );
    expect(stall).toBeLessThan(seconds - 4);
  });
});
