/**
 * Faults: the plugin killed at every step of ADD, a tool missing in the middle of ADD, and the
 * gateway restarted under open connections. Faults are injected from outside, as they happen:
 * a wrapper around nsenter (first in PATH) SIGKILLs the plugin when its k-th command starts,
 * and a PATH without iptables-restore makes the iptables step fail.
 */
import { chmod, mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cni, type Network, writeBridgeConflist } from "../../src/lab/cni-client.js";
import { applyGateway, gatewayCli } from "../../src/lab/gateway-cli.js";
import type { Background } from "../../src/lab/process.js";
import { netnsSnapshot, waitSettled } from "../../src/lab/snapshot.js";
import { createLab, INET_IP, type Lab, uniquePrefix } from "../../src/lab/topology.js";
import { sourceSeenBy, startInetServers } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";
import { runPlugin } from "../integration/plugin-driver.js";

let lab: Lab;
let servers: Background;
let gw: { ns: string; ip: string };
let main: Network;
const gatewayConfig = {
  tenants: [
    {
      name: "red",
      vni: 100,
      overlaySubnet: "172.16.0.0/24",
      allowedSources: ["10.22.0.0/24"],
      upload: { rate: "20mbit" },
      download: { rate: "20mbit" },
    },
  ],
};

beforeAll(async () => {
  lab = await createLab(uniquePrefix("f"));
  servers = await startInetServers(lab.ns.inet);
  gw = await lab.addGateway("gw", 2);
  await applyGateway(gw.ns, lab.dir, gatewayConfig);
  main = await writeBridgeConflist({ name: `${lab.prefix}-main`, dir: lab.dir });
  // nsenter that SIGKILLs its caller (the plugin) when the KILL_AT-th call starts.
  const killer = join(lab.dir, "killer");
  await mkdir(killer);
  await writeFile(
    join(killer, "nsenter"),
    `#!/bin/bash
# Only the plugin's own commands count (the test starts the plugin through nsenter too).
grep -q tenant-egress /proc/$PPID/cmdline || exec /usr/bin/nsenter "$@"
exec 9>>"$COUNTER.lock"; flock 9
n=$(( $(cat "$COUNTER" 2>/dev/null || echo 0) + 1 )); echo $n > "$COUNTER"
flock -u 9
if [ "$n" = "$KILL_AT" ]; then kill -KILL $PPID; exit 137; fi
exec /usr/bin/nsenter "$@"
`,
  );
  await chmod(join(killer, "nsenter"), 0o755);
  // PATHs with every tool but one: iptables-restore, or nft.
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
  for (const lacking of ["iptables-restore", "nft"]) {
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

async function attachMain(name: string) {
  const pod = await lab.addPodNamespace(name);
  const prevResult = JSON.parse(await cni("add", { node: lab.ns.nodeA, network: main, pod })) as unknown;
  await waitSettled(pod);
  return { pod, prevResult, asMainLeftIt: await netnsSnapshot(pod) };
}

/** Counts each iptables rule line; a rule present twice is a bug. */
async function duplicateRules(ns: string): Promise<string[]> {
  const lines = (await run(["ip", "netns", "exec", ns, "iptables-save"])).stdout
    .split("\n")
    .filter((l) => l.startsWith("-A "));
  return lines.filter((l, i) => lines.indexOf(l) !== i);
}

/** The node's enforcement chains (nftables, netdev family, one shared table). */
async function enforcementChains(): Promise<string[]> {
  const r = await run(["ip", "netns", "exec", lab.ns.nodeA, "nft", "list", "table", "netdev", "tenant-egress"], {
    allowFailure: true,
  });
  return r.stdout.match(/^\s+chain te-\S+/gm) ?? [];
}

describe("the plugin killed at each step of ADD", () => {
  // ADD runs three commands in the pod: ip and iptables-save to observe, then iptables-restore
  // (the ip changes go to the observing ip, in parallel with it); the tunnel's rp_filter needs no
  // write here, as the lab's namespaces are not strict (conf/all and default 0). The node's
  // enforcement (nft, ip link: run in the plugin's own namespace) needs no nsenter.
  it.each([1, 2, 3])("SIGKILL when command %i starts: DEL + ADD converge, nothing doubled", async (k) => {
    const { pod, prevResult, asMainLeftIt } = await attachMain(`kill${k}`);
    const counter = join(lab.dir, `counter-${k}`);
    const killed = await runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, "ADD", conf(prevResult), {
      PATH: `${join(lab.dir, "killer")}:${process.env.PATH}`,
      COUNTER: counter,
      KILL_AT: String(k),
      CNI_CONTAINERID: `kill${k}`,
    });
    expect(killed.exitCode).not.toBe(0);
    // The runtime's answer to a failed ADD: DEL, then (on retry) ADD again.
    const env = { CNI_CONTAINERID: `kill${k}` };
    expect(await runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, "DEL", conf(prevResult), env)).toMatchObject({
      exitCode: 0,
      stdout: "",
    });
    expect(await netnsSnapshot(pod)).toBe(asMainLeftIt);
    expect((await runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, "ADD", conf(prevResult), env)).exitCode).toBe(0);
    expect((await runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, "CHECK", conf(prevResult), env)).exitCode).toBe(0);
    expect(await duplicateRules(pod)).toEqual([]);
    expect(await duplicateRules(lab.ns.nodeA)).toEqual([]);
    expect(await enforcementChains()).toHaveLength(1);
    expect(await sourceSeenBy(pod)).toBe(gw.ip);
    // Killed again, then ADD without a DEL in between: still converges.
    await runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, "ADD", conf(prevResult), {
      ...env,
      PATH: `${join(lab.dir, "killer")}:${process.env.PATH}`,
      COUNTER: `${counter}-b`,
      KILL_AT: String(k),
    });
    expect((await runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, "ADD", conf(prevResult), env)).exitCode).toBe(0);
    expect(await duplicateRules(pod)).toEqual([]);
    expect((await runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, "DEL", conf(prevResult), env)).exitCode).toBe(0);
    expect(await netnsSnapshot(pod)).toBe(asMainLeftIt);
    expect(await enforcementChains()).toEqual([]);
  });
});

describe("a step failing mid-ADD", () => {
  it("iptables-restore missing: ADD fails clearly and both namespaces are back to before", async () => {
    const { pod, prevResult, asMainLeftIt } = await attachMain("noipt");
    await waitSettled(lab.ns.nodeA);
    const node = await netnsSnapshot(lab.ns.nodeA);
    const r = await runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, "ADD", conf(prevResult), {
      PATH: join(lab.dir, "no-iptables-restore"),
      CNI_CONTAINERID: "noipt",
    });
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      code: 101,
      msg: expect.stringMatching(/iptables-restore.*(No such file|not found).*required tool is missing/),
    });
    expect(await netnsSnapshot(pod)).toBe(asMainLeftIt);
    expect(await netnsSnapshot(lab.ns.nodeA)).toBe(node);
  });
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
