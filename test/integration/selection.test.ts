/**
 * Per-pod gateway selection and the plugin's safety and atomicity, through the real chain:
 * pod annotations arrive through the runtime's capability args, tenants through CNI_ARGS and
 * the namespace map; a pod with no gateway is left untouched; a failing ADD leaves nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cni, cnitool, type Network, writeBridgeConflist } from "../../src/lab/cni-client.js";
import { runPlugin } from "../../src/lab/plugin-runner.js";
import type { Background } from "../../src/lab/process.js";
import { netnsSnapshot, waitSettled } from "../../src/lab/snapshot.js";
import { createLab, type Lab, uniquePrefix } from "../../src/lab/topology.js";
import { sourceSeenBy, startInetServers } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";
import { plainGateway } from "./plain-gateway.js";

let lab: Lab;
let servers: Background;
let red: { ns: string; ip: string };
let blue: { ns: string; ip: string };
let net: Network;

beforeAll(async () => {
  lab = await createLab(uniquePrefix("s"));
  servers = await startInetServers(lab.ns.inet);
  red = await lab.addGateway("red", 10);
  blue = await lab.addGateway("blue", 20);
  await plainGateway(red.ns, red.ip, 300, "172.30.0.1/16");
  await plainGateway(blue.ns, blue.ip, 400, "172.31.0.1/16");
  net = await writeBridgeConflist({
    name: `${lab.prefix}-net`,
    dir: lab.dir,
    capabilities: { "io.kubernetes.cri.pod-annotations": true },
    egress: {
      tenants: {
        red: { gateway: red.ip, vni: 300, overlaySubnet: "172.30.0.0/16" },
        blue: { gateway: blue.ip, vni: 400, overlaySubnet: "172.31.0.0/16" },
      },
      namespaces: { "team-blue": "blue" },
    },
  });
});

afterAll(async () => {
  await servers?.stop();
  await lab?.teardown();
});

const call = (pod: string, extra: Partial<Parameters<typeof cni>[1]> = {}) => ({
  node: lab.ns.nodeA,
  network: net,
  pod,
  ...extra,
});

describe("gateway selection through the runtime's inputs", () => {
  it("uses the pod annotation delivered as a capability", async () => {
    const pod = await lab.addPodNamespace("annotated");
    await cni(
      "add",
      call(pod, { capabilityArgs: { "io.kubernetes.cri.pod-annotations": { "tenant-egress/tenant": "red" } } }),
    );
    expect(await sourceSeenBy(pod)).toBe(red.ip);
  });

  it("uses the namespace → tenant map from K8S_POD_NAMESPACE", async () => {
    const pod = await lab.addPodNamespace("byns");
    await cni("add", call(pod, { cniArgs: "IgnoreUnknown=1;K8S_POD_NAMESPACE=team-blue;K8S_POD_NAME=x" }));
    expect(await sourceSeenBy(pod)).toBe(blue.ip);
  });

  it("lets CNI_ARGS override the namespace map", async () => {
    const pod = await lab.addPodNamespace("override");
    await cni("add", call(pod, { cniArgs: "IgnoreUnknown=1;K8S_POD_NAMESPACE=team-blue;EGRESS_TENANT=red" }));
    expect(await sourceSeenBy(pod)).toBe(red.ip);
  });

  it("leaves a pod with no gateway untouched: its traffic leaves from its own address", async () => {
    const pod = await lab.addPodNamespace("plain");
    const result = JSON.parse(
      await cni("add", call(pod, { cniArgs: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default" })),
    ) as { ips: Array<{ address: string }> };
    expect(await sourceSeenBy(pod)).toBe(result.ips[0]!.address.split("/")[0]);
    const links = await run(["ip", "-n", pod, "-o", "link"]);
    expect(links.stdout).not.toMatch(/te-eth0/);
  });
});

describe("safety and atomicity", () => {
  it("refuses to run in its own (host) network namespace", async () => {
    const r = await runPlugin(lab.ns.nodeA, `/run/netns/${lab.ns.nodeA}`, "ADD", {
      cniVersion: "1.0.0",
      name: "x",
      type: "tenant-egress",
      gateway: red.ip,
      prevResult: {
        cniVersion: "1.0.0",
        interfaces: [{ name: "eth0", sandbox: "/x" }],
        ips: [{ address: "10.22.0.9/24", interface: 0 }],
      },
    });
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      code: 4,
      msg: expect.stringMatching(/own \(host\) network namespace/),
    });
  });

  it("rolls a failed ADD back to exactly what the main plugin left", async () => {
    const pod = await lab.addPodNamespace("conflict");
    const mainOnly = await writeBridgeConflist({ name: `${lab.prefix}-main`, dir: lab.dir });
    const prevResult = JSON.parse(await cni("add", call(pod, { network: mainOnly }))) as unknown;
    // Something else already owns the name our tunnel device needs.
    await run(["ip", "-n", pod, "link", "add", "te-eth0", "type", "veth", "peer", "name", "other0"]);
    await waitSettled(pod);
    const before = await netnsSnapshot(pod);
    const r = await runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, "ADD", {
      cniVersion: "1.0.0",
      name: mainOnly.name,
      type: "tenant-egress",
      gateway: red.ip,
      prevResult,
    });
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 101, msg: expect.stringMatching(/File exists/) });
    expect(await netnsSnapshot(pod)).toBe(before);
  });

  it("reports a missing netns on ADD with code 4, and its DEL still succeeds", async () => {
    const conf = {
      cniVersion: "1.0.0",
      name: "x",
      type: "tenant-egress",
      gateway: red.ip,
      prevResult: { ips: [{ address: "10.22.0.9/24" }] },
    };
    const add = await runPlugin(lab.ns.nodeA, "/run/netns/does-not-exist", "ADD", conf);
    expect(JSON.parse(add.stdout)).toMatchObject({ code: 4, msg: expect.stringMatching(/does not exist/) });
    const del = await runPlugin(lab.ns.nodeA, "/run/netns/does-not-exist", "DEL", conf);
    expect(del).toMatchObject({ exitCode: 0, stdout: "" });
  });

  it("lets libcni clean up after a failed chain ADD", async () => {
    const pod = await lab.addPodNamespace("badtenant");
    const r = await cnitool("add", call(pod, { cniArgs: "IgnoreUnknown=1;EGRESS_TENANT=green" }));
    expect(r.ok).toBe(false);
    expect(r.stderr + r.stdout).toMatch(/tenant "green" is not defined/);
    await cni("del", call(pod, { cniArgs: "IgnoreUnknown=1;EGRESS_TENANT=green" }));
  });
});
