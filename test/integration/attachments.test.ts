/**
 * Several tenant-egress attachments in one pod, as Multus makes them: eth0 on a bridge network
 * and net1 on a ptp network (CNI_IFNAME=net1), each chained with tenant-egress for a different
 * tenant and gateway. The main plugins run through cnitool; our plugin is then invoked per
 * attachment the way libcni invokes the next plugin of a chain (with the main plugin's result),
 * so the namespace can be compared with what the main plugins alone left. The internet host
 * gets a second address that the ptp network routes through net1: traffic to it is net1's.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cni, type Network, writeBridgeConflist, writePtpConflist } from "../../src/lab/cni-client.js";
import type { Background } from "../../src/lab/process.js";
import { netnsSnapshot, waitSettled } from "../../src/lab/snapshot.js";
import { createLab, INET_IP, ipIn, type Lab, uniquePrefix } from "../../src/lab/topology.js";
import { sourceSeenBy, startInetServers } from "../../src/lab/traffic.js";
import { plainGateway } from "./plain-gateway.js";
import { runPlugin } from "./plugin-driver.js";

/** The internet host's second address, routed through net1. */
const INET_IP_2 = "203.0.113.11";

let lab: Lab;
let servers: Background;
let gwA: { ns: string; ip: string };
let gwB: { ns: string; ip: string };
let netA: Network;
let netB: Network;
let pod: string;
let asMainLeftIt: string;
const prev: Record<string, unknown> = {};

const conf = (ifname: "eth0" | "net1", extra: Record<string, unknown> = {}) => ({
  cniVersion: "1.0.0",
  name: ifname === "eth0" ? netA.name : netB.name,
  type: "tenant-egress",
  ...(ifname === "eth0"
    ? { gateway: gwA.ip }
    : { gateway: gwB.ip, vni: 200, overlaySubnet: "172.17.0.0/16", routeTable: 200, mark: "0xa/0xff" }),
  ...extra,
});

const plugin = (ifname: "eth0" | "net1", command: string, extra: Record<string, unknown> = {}) =>
  runPlugin(
    lab.ns.nodeA,
    `/run/netns/${pod}`,
    command,
    { ...conf(ifname, extra), ...(command === "DEL" ? {} : { prevResult: prev[ifname] }) },
    { CNI_IFNAME: ifname },
  );

beforeAll(async () => {
  lab = await createLab(uniquePrefix("m"));
  servers = await startInetServers(lab.ns.inet);
  await ipIn(lab.ns.inet, [`addr add ${INET_IP_2}/24 dev eth0`]);
  gwA = await lab.addGateway("gwa", 2);
  gwB = await lab.addGateway("gwb", 3);
  await plainGateway(gwA.ns, gwA.ip);
  await plainGateway(gwB.ns, gwB.ip, 200, "172.17.0.1/16");
  netA = await writeBridgeConflist({ name: `${lab.prefix}-a`, dir: lab.dir });
  netB = await writePtpConflist({ name: `${lab.prefix}-b`, dir: lab.dir, routes: [`${INET_IP_2}/32`, `${gwB.ip}/32`] });
  pod = await lab.addPodNamespace("pod");
  prev.eth0 = JSON.parse(await cni("add", { node: lab.ns.nodeA, network: netA, pod })) as unknown;
  prev.net1 = JSON.parse(await cni("add", { node: lab.ns.nodeA, network: netB, pod, ifname: "net1" })) as unknown;
  await waitSettled(pod);
  asMainLeftIt = await netnsSnapshot(pod);
});

afterAll(async () => {
  await servers?.stop();
  await lab?.teardown();
});

describe("two tenant-egress attachments in one pod (eth0 via bridge, net1 via ptp)", () => {
  it("both steer to their own gateway at once, with the same routeTable and mark configured", async () => {
    for (const ifname of ["eth0", "net1"] as const) expect((await plugin(ifname, "ADD")).exitCode).toBe(0);
    const [a, b] = await Promise.all([sourceSeenBy(pod), sourceSeenBy(pod, INET_IP_2)]);
    expect({ a, b }).toEqual({ a: gwA.ip, b: gwB.ip });
    for (const ifname of ["eth0", "net1"] as const) expect((await plugin(ifname, "CHECK")).exitCode).toBe(0);
  });

  it("a repeated ADD of each keeps its own slot", async () => {
    for (const ifname of ["net1", "eth0"] as const) expect((await plugin(ifname, "ADD")).exitCode).toBe(0);
    for (const ifname of ["eth0", "net1"] as const) expect((await plugin(ifname, "CHECK")).exitCode).toBe(0);
    expect(await sourceSeenBy(pod, INET_IP_2)).toBe(gwB.ip);
  });

  it("DEL of one leaves the other working and CHECK-clean; both DELs restore the pod as the main plugins left it", async () => {
    expect((await plugin("eth0", "DEL")).exitCode).toBe(0);
    expect(await sourceSeenBy(pod, INET_IP_2)).toBe(gwB.ip);
    expect(await sourceSeenBy(pod, INET_IP).catch(() => "no answer")).not.toBe(gwA.ip);
    expect((await plugin("net1", "CHECK")).exitCode).toBe(0);
    expect((await plugin("eth0", "ADD")).exitCode).toBe(0);
    expect(await sourceSeenBy(pod)).toBe(gwA.ip);
    expect((await plugin("net1", "DEL")).exitCode).toBe(0);
    expect(await sourceSeenBy(pod)).toBe(gwA.ip);
    expect((await plugin("eth0", "CHECK")).exitCode).toBe(0);
    expect((await plugin("eth0", "DEL")).exitCode).toBe(0);
    expect(await netnsSnapshot(pod)).toBe(asMainLeftIt);
  });

  it("DEL removes everything when routeTable and mark changed in the conflist since ADD", async () => {
    expect((await plugin("net1", "ADD")).exitCode).toBe(0);
    const del = await plugin("net1", "DEL", { routeTable: 300, mark: "0x100/0xf00", rulePriority: 2000 });
    expect({ exitCode: del.exitCode, stderr: del.stderr }).toEqual({ exitCode: 0, stderr: "" });
    expect(await netnsSnapshot(pod)).toBe(asMainLeftIt);
  });
});
