/**
 * containerd's CRI as the runtime, the way a Kubernetes node runs it: Debian's containerd in
 * node-a's namespace, bridge + host-local as the node's "primary CNI", the installer chaining
 * tenant-egress into that config from one tenants file, and pods created and deleted through
 * the CRI calls kubelet makes. containerd — not the test — runs loopback, bridge, host-local and
 * our plugin, with its own CNI_ARGS, its capability args (pod annotations) and its DEL habits
 * (Stop, Stop, Remove: the later DELs with no netns and no prevResult).
 */
import { mkdir, readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REFERENCE_PLUGINS } from "../../src/lab/cni-client.js";
import { type Containerd, startContainerd } from "../../src/lab/containerd.js";
import type { PodSpec } from "../../src/lab/cri.js";
import { eventually } from "../../src/lab/eventually.js";
import { applyGateway } from "../../src/lab/gateway-cli.js";
import { type Background, startIn } from "../../src/lab/process.js";
import { enforcementChains, netnsSnapshot, waitSettled } from "../../src/lab/snapshot.js";
import { clusterTenant, labTenant } from "../../src/lab/tenants.js";
import { createLab, type Lab, POD_SUBNET, uniquePrefix } from "../../src/lab/topology.js";
import { sourceSeenBy, startInetServers } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";

const INSTALLER = resolve("dist/tenant-egress-install");
const NETWORK = "k8s-pod-network";
/** libcni's result cache, where containerd 1.6 keeps each attachment's result (not configurable). */
const CNI_RESULTS = "/var/lib/cni/results";

let lab: Lab;
let servers: Background | undefined;
let installer: Background | undefined;
let containerd: Containerd | undefined;
let acmeGw: { ns: string; ip: string };
let globexGw: { ns: string; ip: string };
let root: string;
let confDir: string;
let ipamDir: string;
const report: string[] = [];

const acme = labTenant("acme", 100, "172.16.0.0/24");
const globex = labTenant("globex", 200, "172.17.0.0/24");

/** The primary CNI's own config: what it writes on every restart of its agent (`revision` tells its writes apart; bridge ignores it). */
async function primaryWrites(revision: number): Promise<void> {
  const primary = {
    cniVersion: "1.0.0",
    name: NETWORK,
    plugins: [
      {
        type: "bridge",
        bridge: "cni0",
        isGateway: true,
        ipMasq: false,
        revision,
        ipam: {
          type: "host-local",
          dataDir: ipamDir,
          ranges: [[{ subnet: POD_SUBNET }]],
          routes: [{ dst: "0.0.0.0/0" }],
        },
      },
    ],
  };
  await writeFile(join(confDir, ".primary.tmp"), JSON.stringify(primary, null, 1));
  await rename(join(confDir, ".primary.tmp"), join(confDir, "10-k8s.conflist"));
}

/** containerd has loaded this revision of the primary's config with tenant-egress chained last (its own report of what it loaded). */
const criLoadedChain = (revision: number) =>
  eventually(
    "containerd's loaded CNI config",
    async () => {
      const s = await containerd!.cri.status();
      const loaded = JSON.parse(s.info.cniconfig ?? "{}") as {
        Networks?: Array<{ Config: { Plugins: Array<{ Network: { type: string }; Source: string }> } }>;
      };
      const plugins = loaded.Networks?.at(-1)?.Config.Plugins ?? [];
      return {
        ready: s.conditions.NetworkReady === true,
        chain: plugins.map((p) => p.Network.type).join(),
        revision: (JSON.parse(plugins[0]?.Source ?? "{}") as { revision?: number }).revision,
      };
    },
    (v) => v.ready && v.chain === "bridge,tenant-egress" && v.revision === revision,
    10,
  );

const nodeEnforcement = () => enforcementChains(lab.ns.nodeA);
/** Addresses host-local holds (one file per allocated IP). */
const allocated = async () =>
  (await readdir(join(ipamDir, NETWORK)).catch(() => [] as string[]))
    .filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n))
    .sort();

/** libcni's cached results of a sandbox: one per network containerd attached (its loopback, the pod network). */
const cachedResults = async (id: string) =>
  (await readdir(CNI_RESULTS).catch(() => [] as string[])).filter((n) => n.includes(id));

const pod = (name: string, namespace: string, annotations: Record<string, string> = {}): PodSpec => ({
  name,
  namespace,
  annotations,
  logDirectory: join(root, "var/log/pods", `${namespace}_${name}`),
});

interface Running {
  id: string;
  ip: string;
  netns: string;
  ms: number;
}

async function runPod(spec: PodSpec): Promise<Running> {
  const t0 = performance.now();
  const id = await containerd!.cri.runPodSandbox(spec);
  const ms = performance.now() - t0;
  const status = await containerd!.cri.podSandboxStatus(id);
  expect(status.state).toBe("SANDBOX_READY");
  return { id, ip: status.ip, netns: await containerd!.podNetns(id), ms };
}

/** kubelet's deletion: StopPodSandbox (twice: the pod worker and the GC both stop it), then RemovePodSandbox. */
async function deletePod(p: Running): Promise<void> {
  expect(await cachedResults(p.id)).toHaveLength(2);
  await containerd!.cri.stopPodSandbox(p.id);
  // The first Stop removed the netns and libcni's cached result: the next two DELs get an empty
  // CNI_NETNS and no prevResult.
  expect(await run(["test", "-e", p.netns], { allowFailure: true }).then((r) => r.exitCode)).not.toBe(0);
  expect(await cachedResults(p.id)).toEqual([]);
  await containerd!.cri.stopPodSandbox(p.id);
  await containerd!.cri.removePodSandbox(p.id);
  expect((await containerd!.cri.listPodSandbox()).map((s) => s.id)).not.toContain(p.id);
}

beforeAll(async () => {
  lab = await createLab(uniquePrefix("k"));
  servers = await startInetServers(lab.ns.inet);
  acmeGw = await lab.addGateway("gwa", 2);
  globexGw = await lab.addGateway("gwg", 3);
  root = join(lab.dir, "node");
  const binDir = join(root, "opt/cni/bin");
  confDir = join(root, "etc/cni/net.d");
  ipamDir = join(root, "var/lib/cni/networks");
  for (const d of [binDir, confDir, join(root, "etc/tenant-egress")]) await mkdir(d, { recursive: true });
  // The node image ships the primary's plugins and loopback; the installer adds ours.
  for (const p of ["bridge", "host-local", "loopback"]) await run(["cp", join(REFERENCE_PLUGINS, p), binDir]);
  const tenants = {
    plugin: { enforce: true },
    tenants: [clusterTenant(acme, acmeGw.ip, { namespaces: ["acme-prod"] }), clusterTenant(globex, globexGw.ip)],
  };
  const tenantsFile = join(root, "etc/tenant-egress/tenants.json");
  await writeFile(tenantsFile, JSON.stringify(tenants));
  await applyGateway(acmeGw.ns, lab.dir, { tenants: [acme] });
  await applyGateway(globexGw.ns, lab.dir, { tenants: [globex] });
  await primaryWrites(1);
  installer = startIn(lab.ns.nodeA, [
    INSTALLER,
    "--bin-dir",
    binDir,
    "--conf-dir",
    confDir,
    "--tenants",
    tenantsFile,
    "--resync",
    "30",
  ]);
  await eventually(
    "the installer's chain",
    async () =>
      (
        JSON.parse(await readFile(join(confDir, "10-k8s.conflist"), "utf8")) as { plugins: Array<{ type: string }> }
      ).plugins
        .map((p) => p.type)
        .join(),
    (v) => v === "bridge,tenant-egress",
    15,
  );
  const t0 = performance.now();
  containerd = await startContainerd({
    ns: lab.ns.nodeA,
    dir: join(lab.dir, "containerd"),
    cniBinDir: binDir,
    cniConfDir: confDir,
  });
  await criLoadedChain(1);
  report.push(
    `containerd ${(await containerd.cri.version()).runtimeVersion} up with the sandbox image imported in ${Math.round(performance.now() - t0)} ms`,
  );
}, 90_000);

afterAll(async () => {
  await containerd?.stop();
  await installer?.stop();
  await servers?.stop();
  await lab?.teardown();
  process.stdout.write(`${report.join("\n")}\n`);
});

describe("containerd CRI drives the chain bridge + host-local + tenant-egress", () => {
  let plain: Running;

  it("a pod of no tenant goes direct", async () => {
    plain = await runPod(pod("plain", "default"));
    expect(await sourceSeenBy(plain.netns)).toBe(plain.ip);
    report.push(`RunPodSandbox default/plain: ${Math.round(plain.ms)} ms, internet saw ${plain.ip} (the pod itself)`);
  });

  it("a pod in a namespace mapped to a tenant leaves through its gateway; Stop, Stop, Remove leave the node as before", async () => {
    await waitSettled(lab.ns.nodeA);
    const before = { node: await netnsSnapshot(lab.ns.nodeA), ips: await allocated() };
    const p = await runPod(pod("web", "acme-prod"));
    const seen = await sourceSeenBy(p.netns);
    expect(seen).toBe(acmeGw.ip);
    expect(await nodeEnforcement()).toBe(1);
    report.push(
      `RunPodSandbox acme-prod/web (namespace → acme): ${Math.round(p.ms)} ms, internet saw ${seen} (acme's gateway)`,
    );
    await deletePod(p);
    expect(await nodeEnforcement()).toBe(0);
    expect(await allocated()).toEqual(before.ips);
    await waitSettled(lab.ns.nodeA);
    expect(await netnsSnapshot(lab.ns.nodeA)).toBe(before.node);
  });

  it("a pod annotated tenant-egress/tenant leaves through that tenant's gateway (annotations via io.kubernetes.cri.pod-annotations)", async () => {
    const before = await allocated();
    const p = await runPod(pod("api", "shared", { "tenant-egress/tenant": "globex" }));
    const seen = await sourceSeenBy(p.netns);
    expect(seen).toBe(globexGw.ip);
    report.push(
      `RunPodSandbox shared/api (annotation → globex): ${Math.round(p.ms)} ms, internet saw ${seen} (globex's gateway)`,
    );
    await deletePod(p);
    expect(await allocated()).toEqual(before);
    expect(await nodeEnforcement()).toBe(0);
  });

  it("a failing ADD fails RunPodSandbox with our message and leaves nothing", async () => {
    await waitSettled(lab.ns.nodeA);
    const before = { node: await netnsSnapshot(lab.ns.nodeA), ips: await allocated() };
    // host-local hands out the address after the last one it reserved.
    const last = (await readFile(join(ipamDir, NETWORK, "last_reserved_ip.0"), "utf8")).trim().split(".").map(Number);
    const next = [...last.slice(0, 3), last[3]! + 1].join(".");
    const cases: Array<[Record<string, string>, RegExp]> = [
      [
        { "tenant-egress/gateway": next },
        new RegExp(`the gateway ${next.replace(/\./g, "\\.")} .*is the pod's own address`),
      ],
      [{ "tenant-egress/gateway": "10.23.0.300" }, /tenant-egress\/gateway.*10\.23\.0\.300/],
    ];
    for (const [annotations, message] of cases) {
      const error = await containerd!.cri.runPodSandbox(pod("broken", "default", annotations)).then(
        () => "",
        (e: Error) => e.message,
      );
      expect(error).toMatch(message);
      report.push(`RunPodSandbox default/broken ${JSON.stringify(annotations)} failed: ${error}`);
    }
    expect((await containerd!.cri.listPodSandbox()).map((s) => s.name)).not.toContain("broken");
    expect(await allocated()).toEqual(before.ips);
    await waitSettled(lab.ns.nodeA);
    expect(await netnsSnapshot(lab.ns.nodeA)).toBe(before.node);
  });

  it("the primary rewrites its config while containerd runs: the installer re-chains it and the next pod is steered", async () => {
    await primaryWrites(2);
    await criLoadedChain(2);
    const p = await runPod(pod("web2", "acme-prod"));
    const seen = await sourceSeenBy(p.netns);
    expect(seen).toBe(acmeGw.ip);
    report.push(
      `RunPodSandbox acme-prod/web2 after the primary rewrote its config: ${Math.round(p.ms)} ms, internet saw ${seen} (acme's gateway)`,
    );
    await deletePod(p);
    await deletePod(plain);
    expect(await allocated()).toEqual([]);
    expect(await nodeEnforcement()).toBe(0);
  });

  it("containerd killed with a pod running: stopping it ends its shim and sandbox, and removes the shim socket and libcni's cache entry", async () => {
    const p = await runPod(pod("left", "default"));
    expect((await containerd!.shims()).length).toBeGreaterThanOrEqual(2);
    expect(await cachedResults(p.id)).toHaveLength(2);
    await stat(containerd!.shimSocket(p.id));
    process.kill(containerd!.pid, "SIGKILL");
    await containerd!.stop();
    expect(await containerd!.shims()).toEqual([]);
    expect(
      await stat(containerd!.shimSocket(p.id)).then(
        () => "left behind",
        () => "gone",
      ),
    ).toBe("gone");
    expect(await cachedResults(p.id)).toEqual([]);
  });
});
