/**
 * `tenant-egress-gateway run` in the lab: a gateway daemon following its file (a ConfigMap-style
 * directory updated by symlink swap), the pods its tunnel learns, drift and signals; and
 * restarted (SIGTERM, then SIGKILL) under an open iperf3 flow, which must not notice.
 *
 * The first part drives the daemon in this process (GatewayDaemon over --netns), so its state
 * is read directly, as the HTTP side reads it; the second runs the built CLI inside the
 * gateway's namespace, as a gateway pod would.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type DaemonState, GatewayDaemon, type ReconcileEvent } from "../../src/gateway/daemon.js";
import { makeLogger } from "../../src/gateway/log.js";
import { cni, writeBridgeConflist } from "../../src/lab/cni-client.js";
import { configMapDir, type DaemonProcess, gatewayCli, startGatewayDaemon } from "../../src/lab/gateway-cli.js";
import type { Background } from "../../src/lab/process.js";
import { clusterTenant, labTenant, pluginTenants } from "../../src/lab/tenants.js";
import { createLab, INET_IP, type Lab, uniquePrefix } from "../../src/lab/topology.js";
import { awaitPush, sourceSeenBy, startInetServers } from "../../src/lab/traffic.js";
import { sendVxlan } from "../../src/lab/vxlan-sender.js";
import { run } from "../../src/net/run.js";
import { overlayIPOfMac, overlayMac } from "../../src/net/vxlan.js";

let lab: Lab;
let servers: Background;
let gw: { ns: string; ip: string };
let pod: string;
let podMac: string;
let podIP: string;
let podVtep: string;
let cm: Awaited<ReturnType<typeof configMapDir>>;

const redTenant = (upload: string) => labTenant("red", 300, "172.30.0.0/24", { upload });
const red = (upload: string) => ({ tenants: [redTenant(upload)] });

const until = async (what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<number> => {
  const started = Date.now();
  while (!(await ok())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - started;
};

const permanentNeighbours = async () =>
  (await run(["ip", "-n", gw.ns, "neigh", "show", "dev", "tev300", "nud", "permanent"])).stdout;
const uploadRate = async () =>
  /class htb 7e:13b parent 7e:1 .*? rate (\S+)/.exec(
    (await run(["ip", "netns", "exec", gw.ns, "tc", "class", "show", "dev", "eth0"])).stdout,
  )?.[1];

beforeAll(async () => {
  lab = await createLab(uniquePrefix("r"));
  servers = await startInetServers(lab.ns.inet);
  gw = await lab.addGateway("gw", 2);
  cm = await configMapDir(join(lab.dir, "configmap"), "gateway.json", red("10mbit"));
  const net = await writeBridgeConflist({
    name: `${lab.prefix}-net`,
    dir: lab.dir,
    egress: pluginTenants(gw.ip, [redTenant("10mbit")]).red,
  });
  pod = await lab.addPodNamespace("pod");
  const result = JSON.parse(await cni("add", { node: lab.ns.nodeA, network: net, pod })) as {
    ips: Array<{ address: string }>;
  };
  podVtep = result.ips[0]!.address.split("/")[0]!;
  const links = JSON.parse(
    (await run(["ip", "-n", pod, "-json", "-details", "link", "show", "type", "vxlan"])).stdout,
  ) as Array<{ address: string }>;
  podMac = links[0]!.address;
  podIP = overlayIPOfMac(podMac)!;
});

afterAll(async () => {
  await servers?.stop();
  await lab?.teardown();
});

describe("GatewayDaemon (run's reconcile loop, read in-process)", () => {
  let daemon: GatewayDaemon;
  const log: string[] = [];
  const state = (): DaemonState => daemon.state();
  const events: ReconcileEvent[] = [];

  beforeAll(async () => {
    // No resync during these tests: each change must come from the trigger under test.
    daemon = new GatewayDaemon({
      file: cm.file,
      netns: `/run/netns/${gw.ns}`,
      resyncMs: 3_600_000,
      cleanupOnExit: false,
      log: makeLogger("json", (l) => log.push(l)),
    });
    daemon.onReconcile((e) => events.push(e));
    await daemon.start();
    await daemon.idle();
    expect(events[0]).toMatchObject({ result: "changed" });
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it("applies the file at start: generation 1, ready", async () => {
    expect(state().history[0]).toMatchObject({ reason: "start", ok: true, generation: 1 });
    expect(state().history[0]!.changes).toContain("link tev300 is missing");
    expect(Object.keys(state().pods)).toEqual(["red"]);
    expect(daemon.ready()).toBe(true);
    const readiness = await daemon.readiness();
    expect(readiness.reason).toBe("the kernel matches the configuration (generation 1)");
    expect(readiness.ready).toBe(true);
    expect(daemon.lastSuccess).toBeInstanceOf(Date);
    expect(JSON.parse(log.find((l) => l.includes('"reason":"start"'))!)).toMatchObject({
      level: "info",
      event: "reconcile",
      reason: "start",
      ok: true,
      generation: 1,
    });
  });

  it("refuses a second daemon on the same namespace", async () => {
    const second = await gatewayCli(gw.ns, ["run", "-f", cm.file]);
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toMatch(
      /another tenant-egress-gateway run serves this network namespace \(lock \/run\/tenant-egress\/gateway-netns-\d+\.lock, held by PID \d+\)/,
    );
  });

  it("learns a transmitting pod within about a second, and forgets it when its FDB entry goes", async () => {
    // A pod that has been silent (a real pod chatters on its own: IPv6 router solicitations for
    // its first seconds): one real VXLAN packet from a node, with the derived MAC of 172.30.0.77.
    const ip = "172.30.0.77";
    const mac = overlayMac(ip);
    const sent = Date.now();
    await sendVxlan(pod, { to: gw.ip, frames: [{ vni: 300, dstMac: overlayMac("172.30.0.1"), srcMac: mac }] });
    // The state is updated once the kernel change is applied: wait for both.
    const known = () => state().pods.red!.some((p) => p.ip === ip);
    await until(
      "the pod's neighbour entry",
      async () => known() && (await permanentNeighbours()).includes(`${ip} lladdr ${mac}`),
    );
    expect(Date.now() - sent).toBeLessThan(3000);
    expect(state().pods.red).toContainEqual({ tenant: "red", dev: "tev300", ip, mac, vtep: podVtep });
    expect(
      state().history.some((r) => r.reason === "pods" && r.podsLearned.includes(`${ip} (red) at VTEP ${podVtep}`)),
    ).toBe(true);

    await run(["ip", "netns", "exec", gw.ns, "bridge", "fdb", "del", mac, "dev", "tev300", "dst", podVtep]);
    await until("the pod's neighbour entry to go", async () => !known() && !(await permanentNeighbours()).includes(ip));
    expect(
      state().history.some((r) => r.reason === "pods" && r.podsForgotten.includes(`${ip} (red) at VTEP ${podVtep}`)),
    ).toBe(true);
  });

  it("serves a real pod from its first packets on", async () => {
    expect(await sourceSeenBy(pod)).toBe(gw.ip);
    await until(
      "the real pod known",
      async () =>
        state().pods.red!.some((p) => p.ip === podIP) &&
        (await permanentNeighbours()).includes(`${podIP} lladdr ${podMac}`),
    );
  });

  it("still delivers a server push to a pod idle past its gateway's neighbour cache", async () => {
    const push = awaitPush(pod, 3);
    await until("the pod learned again", async () => (await permanentNeighbours()).includes(podIP));
    await run(["ip", "-n", gw.ns, "neigh", "flush", "dev", "tev300"]);
    expect(await push).toBe("push");
  });

  it("names the VTEP and MAC of a pod whose tunnel MAC breaks the contract, and counts it", async () => {
    const before = state().strangersReported;
    await sendVxlan(pod, {
      to: gw.ip,
      frames: [{ vni: 300, dstMac: overlayMac("172.30.0.1"), srcMac: "52:54:00:ab:cd:ef" }],
    });
    await until("the contract breaker reported", () => state().strangersReported === before + 1);
    expect(state().strangers).toEqual([{ tenant: "red", dev: "tev300", mac: "52:54:00:ab:cd:ef", vtep: podVtep }]);
    const line = JSON.parse(log.find((l) => l.includes('"event":"mac-contract"'))!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: "warn", vtep: podVtep, mac: "52:54:00:ab:cd:ef", tenant: "red" });
    expect(String(line.msg)).toMatch(/no derived MAC 02:7e:<overlay IPv4> of 172\.30\.0\.0\/24/);
    expect(await permanentNeighbours()).not.toMatch(/52:54:00:ab:cd:ef/);
    // A one-shot apply says so too.
    const once = await gatewayCli(gw.ns, ["apply", "-f", cm.file]);
    expect(once.exitCode).toBe(0);
    expect(once.stderr).toMatch(
      new RegExp(
        `warning: pod at VTEP ${podVtep.replace(/\./g, "\\.")} sends tenant red's tunnel \\(tev300\\) from MAC 52:54:00:ab:cd:ef`,
      ),
    );
    await run([
      "ip",
      "netns",
      "exec",
      gw.ns,
      "bridge",
      "fdb",
      "del",
      "52:54:00:ab:cd:ef",
      "dev",
      "tev300",
      "dst",
      podVtep,
    ]);
  });

  it("re-applies within about a second of a ConfigMap symlink swap", async () => {
    const from = state().history.length;
    const swapped = Date.now();
    await cm.update(red("15mbit"));
    await until("the new rate in the kernel", async () => (await uploadRate()) === "15Mbit");
    // A loose bound: the machine is shared with other suites; the daemon needs well under a second.
    expect(Date.now() - swapped).toBeLessThan(5000);
    const rec = state()
      .history.slice(from)
      .find((r) => r.reason === "file")!;
    expect(rec).toMatchObject({ ok: true, generation: 2 });
    expect(rec.changes.join("\n")).toMatch(/class 7e:13b on eth0 has rate 10000000 \(want 15000000\)/);
  });

  it("refuses an invalid file, keeps it as the error and the last good state in force; a good file clears it", async () => {
    await cm.update({ tenants: [{ ...red("1mbit").tenants[0], upload: { rate: "fast" } }] });
    await until("the refusal", () => state().configError !== undefined);
    expect(state().configError!.message).toMatch(/tenants\[0\]\.upload\.rate: "fast" is not a rate/);
    expect(state().generation).toBe(2);
    expect(daemon.ready()).toBe(false);
    expect(daemon.configError).toMatch(/"fast" is not a rate/);
    expect(events.map((e) => e.result)).toContain("invalid_config");
    expect(log.some((l) => /"event":"config".*keeping generation 2/.test(l))).toBe(true);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await uploadRate()).toBe("15Mbit");
    await cm.update(red("10mbit"));
    await until("the good file in force", async () => (await uploadRate()) === "10Mbit");
    expect(state().configError).toBeUndefined();
    expect(state().generation).toBe(3);
    expect(daemon.ready()).toBe(true);
  });
});

describe("tenant-egress-gateway run (the process)", () => {
  // Each test stops what it started, failed or not: a daemon left running holds the namespace's
  // lock, and every later test's daemon would refuse to start.
  const processes: DaemonProcess[] = [];
  afterEach(async () => {
    for (const p of processes.splice(0)) await p.stop();
  });
  const start = (extra: string[] = [], resync = ["--resync", "30s"]) => {
    const p = startGatewayDaemon(gw.ns, ["-f", cm.file, ...resync, "--listen", "127.0.0.1:9464", ...extra]);
    processes.push(p);
    return p;
  };
  const http = async (path: string) =>
    (
      await run(
        [
          "ip",
          "netns",
          "exec",
          gw.ns,
          "curl",
          "-s",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          `http://127.0.0.1:9464${path}`,
        ],
        { allowFailure: true },
      )
    ).stdout;

  it("restarts (SIGTERM, then kill -9) under an open flow: nothing to change, no reset, no process left", async () => {
    expect(await sourceSeenBy(pod)).toBe(gw.ip);
    let daemon = start();
    // Its first reconcile finds the kernel as the in-process daemon left it.
    expect(await daemon.waitFor(/ start: /)).toMatch(
      /start: nothing to change; 1 learned pod in the kernel \(uplink eth0, generation 1, \d+ ms\)/,
    );
    expect(await http("/healthz")).toBe("200");
    expect(await http("/readyz")).toBe("200");
    const flow = run(
      ["ip", "netns", "exec", pod, "iperf3", "-c", INET_IP, "-p", "5204", "-t", "8", "-i", "0.5", "-J", "-b", "5M"],
      { allowFailure: true },
    );
    await new Promise((r) => setTimeout(r, 1500));

    daemon.signal("SIGTERM");
    expect(await daemon.exited).toMatchObject({ exitCode: 0 });
    expect(daemon.lines.join("\n")).toMatch(/stopping; the kernel state stays as it is/);
    daemon = start();
    expect(await daemon.waitFor(/ start: /)).toMatch(/start: nothing to change/);
    await new Promise((r) => setTimeout(r, 1500));

    const monitorPids = async () =>
      (
        await run(["pgrep", "-P", String(daemon.pid), "-f", "bridge monitor fdb"], { allowFailure: true })
      ).stdout.trim();
    expect(await monitorPids()).not.toBe("");
    const child = await monitorPids();
    daemon.signal("SIGKILL");
    await daemon.exited;
    await until(
      "the FDB monitor to die with it",
      async () => (await run(["kill", "-0", child], { allowFailure: true })).exitCode !== 0,
      3000,
    );
    daemon = start();
    expect(await daemon.waitFor(/ start: /)).toMatch(/start: nothing to change/);

    const report = JSON.parse((await flow).stdout) as { error?: string; end: { sum_received: { bytes: number } } };
    expect(report.error, "the open flow was reset by a daemon restart").toBeUndefined();
    expect(report.end.sum_received.bytes).toBeGreaterThan(1_000_000);
    expect(await permanentNeighbours()).toContain(`${podIP} lladdr ${podMac}`);
    const lock = /lock (\/\S+?\.lock)/.exec((await gatewayCli(gw.ns, ["run", "-f", cm.file])).stderr)?.[1];
    expect(lock).toMatch(/^\/run\/tenant-egress\/gateway-netns-\d+\.lock$/);
    await daemon.stop();
    // A daemon that stops removes its lock file (one that was killed leaves it, unlocked).
    expect((await run(["test", "-e", lock!], { allowFailure: true })).exitCode).toBe(1);
  });

  it("reads the cluster's tenants file (what the gateway manifest mounts) as its gateway half", async () => {
    // The same tenant as `red("10mbit")`, as an operator writes it once for both halves.
    const tenant = clusterTenant(redTenant("10mbit"), gw.ip);
    const file = join(lab.dir, "tenants.json");
    await writeFile(file, JSON.stringify({ plugin: { enforce: true }, tenants: [tenant] }));
    const dry = await gatewayCli(gw.ns, ["apply", "--dry-run", "-f", file]);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toMatch(/nothing to change/);
    const daemon = startGatewayDaemon(gw.ns, ["-f", file]);
    processes.push(daemon);
    expect(await daemon.waitFor(/ start: /)).toMatch(/start: nothing to change; 1 learned pod/);
    await daemon.stop();

    await writeFile(file, JSON.stringify({ tenants: [{ ...tenant, upload: { rate: "fast" } }] }));
    const bad = await gatewayCli(gw.ns, ["apply", "-f", file]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(
      /invalid configuration: as a tenants file: as the gateway's configuration: .*"fast" is not a rate/,
    );
  });

  it("repairs drift on every resync and logs exactly what it repaired", async () => {
    const daemon = start(["--log-format", "json"], ["--resync", "1s"]);
    await daemon.waitFor(/"reason":"start"/);
    const from = daemon.lines.length;
    await run(["ip", "netns", "exec", gw.ns, "iptables", "-w", "-F", "TEG-FWD-300"]);
    await run([
      "ip",
      "netns",
      "exec",
      gw.ns,
      "tc",
      "class",
      "change",
      "dev",
      "eth0",
      "classid",
      "7e:13b",
      "parent",
      "7e:1",
      "htb",
      "rate",
      "3mbit",
    ]);
    // Two commands: a resync may fall between them and repair them in two runs.
    const repaired = () =>
      daemon.lines
        .slice(from)
        .map((l) => JSON.parse(l) as { reason?: string; changes?: string[] })
        .filter((l) => l.reason === "resync")
        .flatMap((l) => l.changes ?? []);
    await until("a resync", () => repaired().length >= 2, 10_000);
    expect(repaired()).toHaveLength(2);
    expect(repaired()).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^iptables chain TEG-FWD-300 \(filter\) has 0 rules, want 4: rule 1 ".+" is missing$/),
        expect.stringMatching(/^class 7e:13b on eth0 has rate 3000000 \(want 10000000\)/),
      ]),
    );
    expect(daemon.lines.slice(from).some((l) => /"msg":"resync: repaired \d things?: /.test(l))).toBe(true);
    expect(await uploadRate()).toBe("10Mbit");
    await daemon.stop();
  });

  it("re-applies on SIGHUP, logs JSON lines with --log-format json, and removes what it owns only with --cleanup-on-exit", async () => {
    const daemon = start(["--log-format", "json", "--cleanup-on-exit"]);
    await daemon.waitFor(/"reason":"start"/);
    await run(["ip", "netns", "exec", gw.ns, "iptables", "-w", "-F", "TEG-IN-300"]);
    const from = daemon.lines.length;
    daemon.signal("SIGHUP");
    const line = JSON.parse(await daemon.waitFor(/"reason":"sighup"/, 10_000, from)) as Record<string, unknown>;
    expect(line).toMatchObject({
      level: "info",
      event: "reconcile",
      reason: "sighup",
      ok: true,
      changes: [
        expect.stringMatching(/^iptables chain TEG-IN-300 \(filter\) has 0 rules, want \d+: rule 1 ".+" is missing$/),
      ],
    });
    for (const l of daemon.lines) expect(() => JSON.parse(l)).not.toThrow();
    await daemon.stop();
    expect(daemon.lines.some((l) => /"event":"cleanup".*removed \d+ things/.test(l))).toBe(true);
    expect((await run(["ip", "-n", gw.ns, "-o", "link"])).stdout).not.toMatch(/tev300/);
  });
});
