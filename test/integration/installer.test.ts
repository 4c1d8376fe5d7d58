/**
 * The node installer as a DaemonSet runs it: inside the node's namespace, against a CNI conf dir
 * that a "primary CNI" (bridge + host-local, written by the test) owns and rewrites, with the
 * tenants file mounted the way a ConfigMap is (a ..data symlink swapped on update). Pods are
 * then attached by libcni (cnitool) from the conflist the installer wrote, with the plugin the
 * installer copied, and must be steered; uninstalling must leave the node as if we had never
 * been there, except for the binary that cached configs still call on DEL.
 */
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cni, REFERENCE_PLUGINS } from "../../src/lab/cni-client.js";
import { eventually } from "../../src/lab/eventually.js";
import { applyGateway } from "../../src/lab/gateway-cli.js";
import { type Background, startIn } from "../../src/lab/process.js";
import { enforcementChains } from "../../src/lab/snapshot.js";
import { clusterTenant, labTenant } from "../../src/lab/tenants.js";
import { createLab, type Lab, POD_SUBNET, uniquePrefix } from "../../src/lab/topology.js";
import { sourceSeenBy, startInetServers } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";

const INSTALLER = resolve("dist/tenant-egress-install");

let lab: Lab;
let servers: Background;
let gw: { ns: string; ip: string };
let root: string;
let binDir: string;
let confDir: string;
let configMap: string;
let installer: Background | undefined;
let generation = 0;

const acme = labTenant("acme", 100, "172.16.0.0/24");
const tenants = (enforce: boolean, extra: object[] = []) => ({
  plugin: { enforce },
  tenants: [clusterTenant(acme, gw.ip, { namespaces: ["acme-prod"] }), ...extra],
});

/** Publishes the tenants file as the kubelet updates a ConfigMap volume: new dir, symlink swap. */
async function publish(content: unknown): Promise<void> {
  const dir = join(configMap, `..${++generation}`);
  await mkdir(dir);
  await writeFile(join(dir, "tenants.json"), typeof content === "string" ? content : JSON.stringify(content));
  await symlink(`..${generation}`, join(configMap, "..data_tmp"));
  await rename(join(configMap, "..data_tmp"), join(configMap, "..data"));
}

const primary = {
  cniVersion: "1.0.0",
  name: "k8s-pod-network",
  plugins: [{ type: "bridge", bridge: "cni0", isGateway: true, ipMasq: false, ipam: {} as object }],
};

/** What the primary CNI writes (on every restart of its agent): its own list, nothing of ours. */
async function primaryWrites(name = "10-k8s.conflist"): Promise<void> {
  const tmp = join(confDir, ".primary.tmp");
  await writeFile(tmp, JSON.stringify(primary, null, 1));
  await rename(tmp, join(confDir, name));
}

async function pluginsOf(name = "10-k8s.conflist"): Promise<string[]> {
  const list = JSON.parse(await readFile(join(confDir, name), "utf8")) as { plugins: Array<{ type: string }> };
  return list.plugins.map((p) => p.type);
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );
const nodeEnforcement = () => enforcementChains(lab.ns.nodeA);

beforeAll(async () => {
  lab = await createLab(uniquePrefix("i"));
  servers = await startInetServers(lab.ns.inet);
  gw = await lab.addGateway("gw", 2);
  await applyGateway(gw.ns, lab.dir, { tenants: [acme] });
  root = await mkdtemp(join(lab.dir, "node-"));
  binDir = join(root, "opt/cni/bin");
  confDir = join(root, "etc/cni/net.d");
  configMap = join(root, "etc/tenant-egress");
  for (const d of [binDir, confDir, configMap]) await mkdir(d, { recursive: true });
  // The primary's plugins are on the node already, as a node image ships them.
  for (const p of ["bridge", "host-local", "loopback"]) await run(["cp", join(REFERENCE_PLUGINS, p), binDir]);
  primary.plugins[0]!.ipam = {
    type: "host-local",
    dataDir: join(root, "ipam"),
    ranges: [[{ subnet: POD_SUBNET }]],
    routes: [{ dst: "0.0.0.0/0" }],
  };
  await publish(tenants(true));
  await symlink("..data/tenants.json", join(configMap, "tenants.json"));
});

afterAll(async () => {
  await installer?.stop();
  await servers?.stop();
  await lab?.teardown();
});

const args = () => [
  INSTALLER,
  "--bin-dir",
  binDir,
  "--conf-dir",
  confDir,
  "--tenants",
  join(configMap, "tenants.json"),
  "--ready-file",
  join(root, "ready"),
  "--resync",
  "30",
];

describe("tenant-egress-install", () => {
  it("installs the binary, waits for the primary's config, then chains into it", async () => {
    installer = startIn(lab.ns.nodeA, args());
    await eventually(
      "the plugin in the bin dir",
      () => exists(join(binDir, "tenant-egress")),
      (v) => v === true,
      10,
    );
    expect((await readdir(binDir)).filter((n) => n.includes("tenant-egress"))).toEqual(["tenant-egress"]);
    await sleep(500);
    expect(await exists(join(root, "ready"))).toBe(false);
    await primaryWrites();
    expect(
      await eventually(
        "our entry",
        () => pluginsOf(),
        (p) => p.join() === "bridge,tenant-egress",
      ),
    ).toEqual(["bridge", "tenant-egress"]);
    await eventually(
      "the ready file",
      () => exists(join(root, "ready")),
      (v) => v === true,
    );
  });

  it("pods created from that config are steered (namespace → tenant), with the installed binary", async () => {
    const pod = await lab.addPodNamespace("acme");
    const network = { name: primary.name, confDir };
    await cni("add", {
      node: lab.ns.nodeA,
      network,
      pod,
      cniPath: binDir,
      cniArgs: "IgnoreUnknown=1;K8S_POD_NAMESPACE=acme-prod;K8S_POD_NAME=web",
    });
    expect(await sourceSeenBy(pod)).toBe(gw.ip);
    expect(await nodeEnforcement()).toBe(1);
  });

  it("re-chains within 2 s when the primary rewrites its file, and then writes nothing more", async () => {
    await primaryWrites();
    await eventually(
      "our entry again",
      () => pluginsOf(),
      (p) => p.join() === "bridge,tenant-egress",
    );
    const settled = (await stat(join(confDir, "10-k8s.conflist"))).mtimeMs;
    await sleep(1500);
    expect((await stat(join(confDir, "10-k8s.conflist"))).mtimeMs).toBe(settled);
  });

  it("follows the tenants file through a ConfigMap update; an invalid one keeps the last good entry", async () => {
    const entry = async () =>
      (
        JSON.parse(await readFile(join(confDir, "10-k8s.conflist"), "utf8")) as {
          plugins: Array<{ tenants?: Record<string, unknown> }>;
        }
      ).plugins[1]!;
    const beta = {
      ...tenants(true).tenants[0]!,
      name: "beta",
      tunnel: { gateway: gw.ip, vni: 200, overlaySubnet: "172.17.0.0/24" },
      namespaces: ["beta"],
    };
    await publish(tenants(true, [beta]));
    await eventually(
      "tenant beta in the entry",
      async () => Object.keys((await entry()).tenants ?? {}),
      (k) => k.join() === "acme,beta",
    );
    await publish("{ this is not json");
    await sleep(1000);
    expect(Object.keys((await entry()).tenants ?? {})).toEqual(["acme", "beta"]);
    await publish(tenants(true, [{ ...beta, tunnel: { ...beta.tunnel, vni: 100 } }]));
    await sleep(1000);
    expect(Object.keys((await entry()).tenants ?? {})).toEqual(["acme", "beta"]);
    await publish(tenants(true));
    await eventually(
      "back to acme alone",
      async () => Object.keys((await entry()).tenants ?? {}),
      (k) => k.join() === "acme",
    );
  });

  it("only touches the chosen network; a .conf primary becomes a .conflist of the same name", async () => {
    await writeFile(
      join(confDir, "20-other.conflist"),
      JSON.stringify({ cniVersion: "1.0.0", name: "other", plugins: [{ type: "ptp" }] }),
    );
    await sleep(800);
    expect(await pluginsOf("20-other.conflist")).toEqual(["ptp"]);
    await rm(join(confDir, "20-other.conflist"));
    // Flannel-style: a single-plugin .conf that sorts first takes over as the runtime's choice.
    const { plugins, ...list } = primary;
    await writeFile(join(confDir, "05-flannel.conf"), JSON.stringify({ ...list, name: "cbr0", ...plugins[0] }));
    await eventually(
      "05-flannel.conflist",
      () => pluginsOf("05-flannel.conflist"),
      (p) => p.join() === "bridge,tenant-egress",
    );
    expect(await exists(join(confDir, "05-flannel.conf"))).toBe(false);
    await rm(join(confDir, "05-flannel.conflist"));
  });

  it("SIGTERM leaves the node chained (an upgrade); --uninstall unchains it and collects what no DEL will reach", async () => {
    await installer!.stop();
    installer = undefined;
    expect(await pluginsOf()).toEqual(["bridge", "tenant-egress"]);
    const r = await run(["ip", "netns", "exec", lab.ns.nodeA, ...args(), "--uninstall"], { allowFailure: true });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/removed tenant-egress from 10-k8s.conflist/);
    expect(await pluginsOf()).toEqual(["bridge"]);
    expect(await nodeEnforcement()).toBe(0);
    expect(await exists(join(binDir, "tenant-egress"))).toBe(true);
    expect(await exists(join(root, "ready"))).toBe(false);
  });
});
