/**
 * The plugin end to end: the real main plugin (bridge + host-local) chained with the built
 * dist/tenant-egress, driven by libcni through cnitool, in a routed lab where the gateway sits
 * on another node. What is asserted is what a user cares about: where the traffic went (the
 * address the internet host saw, what crossed eth0 untunnelled), the MSS on the wire, and that
 * CHECK and DEL leave the namespace exactly as the runtime expects.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cni, cnitool, type Network, writeBridgeConflist } from "../../src/lab/cni-client.js";
import { rulePackets, snmpCounter } from "../../src/lab/counters.js";
import { runPlugin } from "../../src/lab/plugin-runner.js";
import type { Background } from "../../src/lab/process.js";
import { netnsSnapshot, waitSettled } from "../../src/lab/snapshot.js";
import { createLab, INET_IP, type Lab, uniquePrefix } from "../../src/lab/topology.js";
import { capture, ping, sourceSeenBy, startInetServers, upload } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";
import { plainGateway } from "./plain-gateway.js";

let lab: Lab;
let servers: Background;
let gw: { ns: string; ip: string };
let net: Network;
/** pod1's chain result, as libcni caches it: the prevResult for our plugin when invoked alone. */
let pod1Result: unknown;

beforeAll(async () => {
  lab = await createLab(uniquePrefix("p"));
  servers = await startInetServers(lab.ns.inet);
  gw = await lab.addGateway("gw", 2);
  await plainGateway(gw.ns, gw.ip);
  net = await writeBridgeConflist({ name: `${lab.prefix}-net`, dir: lab.dir, egress: { gateway: gw.ip } });
});

afterAll(async () => {
  await servers?.stop();
  await lab?.teardown();
});

describe("chained after bridge + host-local, driven by cnitool", () => {
  it("steers public traffic through the gateway, and none of it leaves eth0 untunnelled", async () => {
    const pod = await lab.addPodNamespace("pod1");
    pod1Result = JSON.parse(await cni("add", { node: lab.ns.nodeA, network: net, pod })) as unknown;
    const plain = await capture(pod, "eth0", `host ${INET_IP}`);
    const tunnelled = await capture(pod, "te-eth0", `host ${INET_IP}`);
    expect(await sourceSeenBy(pod)).toBe(gw.ip);
    expect(await plain.stop()).toEqual([]);
    expect((await tunnelled.stop()).length).toBeGreaterThan(0);
  });

  it("leaves private traffic direct", async () => {
    const pod = `${lab.prefix}-pod1`;
    const tunnelled = await capture(pod, "te-eth0", "net 10.0.0.0/8");
    expect(await ping(pod, "10.0.1.1")).toBe(true); // the router, on another node: private
    expect(await tunnelled.stop()).toEqual([]);
  });

  it("clamps the MSS of SYN and SYN-ACK, so full-size segments never need fragmenting", async () => {
    const pod = `${lab.prefix}-pod1`;
    const seen = await capture(lab.ns.inet, "eth0", "tcp[tcpflags] & tcp-syn != 0", true);
    const fragFailsBefore = await snmpCounter(pod, "Ip", "FragFails");
    await upload(pod, 2_000_000);
    const syns = (await seen.stop()).join("\n");
    expect(syns).toMatch(/mss 1410/);
    expect(await snmpCounter(pod, "Ip", "FragFails")).toBe(fragFailsBefore);
    // The SYN-ACK arriving from the tunnel went through the clamp (the -i rule counted it).
    expect(await rulePackets(pod, "mangle", "TE-MSS-eth0", /^-i te-eth0 /)).toBeGreaterThan(0);
  });

  it("passes CHECK for both plugins, and fails CHECK naming what was removed by hand", async () => {
    const pod = `${lab.prefix}-pod1`;
    await cni("check", { node: lab.ns.nodeA, network: net, pod });
    await run(["ip", "-n", pod, "rule", "del", "pref", "1000"]);
    const r = await cnitool("check", { node: lab.ns.nodeA, network: net, pod });
    expect(r.ok).toBe(false);
    expect(r.stderr + r.stdout).toMatch(/ip rule fwmark 0xa\/0xff lookup 200 is missing/);
    // A repeated ADD of our plugin converges (the bridge plugin itself is not re-runnable).
    const again = await plugin(pod, "ADD", {
      cniVersion: "1.0.0",
      name: net.name,
      type: "tenant-egress",
      gateway: gw.ip,
      prevResult: pod1Result,
    });
    expect(again.exitCode).toBe(0);
    await cni("check", { node: lab.ns.nodeA, network: net, pod });
  });

  it("DEL leaves the namespace as the main plugin left it, and a second DEL succeeds", async () => {
    const pod = await lab.addPodNamespace("pod2");
    const mainOnly = await writeBridgeConflist({ name: `${lab.prefix}-main`, dir: lab.dir });
    const prevResult = JSON.parse(await cni("add", { node: lab.ns.nodeA, network: mainOnly, pod })) as unknown;
    await waitSettled(pod);
    const asMainLeftIt = await netnsSnapshot(pod);
    // Our plugin on its own, invoked the way libcni invokes the next plugin of a chain.
    const conf = { cniVersion: "1.0.0", name: mainOnly.name, type: "tenant-egress", gateway: gw.ip };
    const add = await plugin(pod, "ADD", { ...conf, prevResult });
    expect(JSON.parse(add.stdout)).toEqual(prevResult);
    expect(await netnsSnapshot(pod)).not.toBe(asMainLeftIt);
    for (const attempt of [1, 2]) {
      const del = await plugin(pod, "DEL", conf);
      expect({ attempt, exitCode: del.exitCode, stdout: del.stdout }).toEqual({ attempt, exitCode: 0, stdout: "" });
      expect(await netnsSnapshot(pod)).toBe(asMainLeftIt);
    }
    await cni("del", { node: lab.ns.nodeA, network: mainOnly, pod });
  });

  it("the whole chain's DEL succeeds twice through libcni", async () => {
    const pod = `${lab.prefix}-pod1`;
    await cni("del", { node: lab.ns.nodeA, network: net, pod });
    await cni("del", { node: lab.ns.nodeA, network: net, pod });
    const links = await run(["ip", "-n", pod, "-o", "link", "show"]);
    expect(links.stdout).not.toMatch(/te-eth0|eth0@/);
  });

  it("DEL succeeds when the netns is already gone", async () => {
    const pod = await lab.addPodNamespace("pod3");
    await cni("add", { node: lab.ns.nodeA, network: net, pod });
    await run(["ip", "netns", "del", pod]);
    const r = await plugin(pod, "DEL", { cniVersion: "1.0.0", name: net.name, type: "tenant-egress", gateway: gw.ip });
    expect(r).toMatchObject({ exitCode: 0, stdout: "" });
  });
});

const plugin = (pod: string, command: string, conf: unknown) =>
  runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, command, conf);
