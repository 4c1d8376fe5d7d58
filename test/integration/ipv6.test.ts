/**
 * Dual stack end to end: the lab's pod network has an IPv4 and an IPv6 range (bridge +
 * host-local), the gateway and the router have IPv6 uplinks, and a tenant pod is attached through
 * the real chain with cnitool. The underlay stays IPv4. What is asserted is what a user of a
 * dual-stack cluster cares about: the chain's result still carries both families unchanged, the
 * pod's IPv4 leaves through the gateway as before, and its private IPv6 (the cluster's ULA) goes
 * direct, never into the tunnel.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cni, cnitool, type Network, writeBridgeConflist } from "../../src/lab/cni-client.js";
import { applyGateway } from "../../src/lab/gateway-cli.js";
import type { Background } from "../../src/lab/process.js";
import { waitSettled } from "../../src/lab/snapshot.js";
import { createLab, INET6_IP, type Lab, POD6_SUBNET, uniquePrefix } from "../../src/lab/topology.js";
import { capture, ping, snmpCounter, sourceSeenBy, startInetServers, upload } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";

let lab: Lab;
let servers: Background;
let gw: { ns: string; ip: string; ip6: string };
let net: Network;
let pod: string;
let result: { ips: Array<{ address: string }> };

const acme = {
  name: "acme",
  vni: 100,
  overlaySubnet: "172.16.0.0/24",
  allowedSources: ["10.22.0.0/24"],
  upload: { rate: "20mbit" },
  download: { rate: "20mbit" },
};

beforeAll(async () => {
  lab = await createLab(uniquePrefix("v6"));
  servers = await startInetServers(lab.ns.inet);
  gw = await lab.addGateway("gw", 2);
  await applyGateway(gw.ns, lab.dir, { linkRate: "100mbit", tenants: [acme] });
  net = await writeBridgeConflist({
    name: `${lab.prefix}-net`,
    dir: lab.dir,
    ipv6Subnet: POD6_SUBNET,
    egress: { tenants: { acme: { gateway: gw.ip, vni: 100, overlaySubnet: "172.16.0.0/24" } } },
  });
  pod = await lab.addPodNamespace("pod");
  result = JSON.parse(
    await cni("add", { node: lab.ns.nodeA, network: net, pod, cniArgs: "IgnoreUnknown=1;EGRESS_TENANT=acme" }),
  );
  await waitSettled(pod);
});

afterAll(async () => {
  await servers?.stop();
  await lab?.teardown();
});

describe("dual stack", () => {
  it("the lab routes IPv6 between the gateway's uplink and the internet host", async () => {
    expect(await sourceSeenBy(gw.ns, INET6_IP)).toBe(gw.ip6);
  });

  it("ADD returns the main plugin's result with both families unchanged", () => {
    expect(result.ips.map((ip) => ip.address)).toEqual([
      expect.stringMatching(/^10\.22\.0\./),
      expect.stringMatching(/^fd00:22::/),
    ]);
  });

  it("the pod's IPv4 leaves through the gateway as before", async () => {
    expect(await sourceSeenBy(pod)).toBe(gw.ip);
  });

  it("the internet host sees the gateway's IPv6 as the source of the pod's IPv6, and none of it leaves eth0 untunnelled", async () => {
    const plain = await capture(pod, "eth0", `ip6 and host ${INET6_IP}`);
    const tunnelled = await capture(pod, "te-eth0", `ip6 and host ${INET6_IP}`);
    expect(await sourceSeenBy(pod, INET6_IP)).toBe(gw.ip6);
    expect(await plain.stop()).toEqual([]);
    expect((await tunnelled.stop()).length).toBeGreaterThan(0);
  });

  it("clamps SYN and SYN-ACK to MSS 1390 (tunnel MTU 1450 - 60), and nothing needs fragmenting", async () => {
    // tcp[] does not reach into IPv6 in pcap filters: the TCP flags byte is ip6[40 + 13].
    const seen = await capture(lab.ns.inet, "eth0", "ip6 and ip6[6] == 6 and ip6[53] & 2 != 0", true);
    await upload(pod, 2_000_000, INET6_IP);
    const syns = (await seen.stop()).join("\n");
    // The pod's SYN arrives clamped; the internet host's SYN-ACK (its own 1440) is clamped on its way
    // into the pod, after any capture point, so the -i rule's counter shows it.
    expect(syns.match(/mss \d+/g)).toEqual(["mss 1390", "mss 1440"]);
    const counters = await run([
      "ip",
      "netns",
      "exec",
      pod,
      "ip6tables",
      "-w",
      "-t",
      "mangle",
      "-L",
      "TE-MSS-eth0",
      "-v",
      "-x",
      "-n",
    ]);
    const inbound = counters.stdout.split("\n").find((l) => /TCPMSS/.test(l) && /\bte-eth0\s+\*/.test(l));
    expect(Number(inbound?.trim().split(/\s+/)[0])).toBeGreaterThan(0);
    expect(await snmpCounter(pod, "Ip6", "FragCreates").catch(() => 0)).toBe(0);
  });

  it("CHECK passes with the IPv6 pieces and names one that is missing", async () => {
    const call = { node: lab.ns.nodeA, network: net, pod, cniArgs: "IgnoreUnknown=1;EGRESS_TENANT=acme" };
    await cni("check", call);
    await run(["ip", "-n", pod, "-6", "rule", "del", "pref", "1000"]);
    const r = await cnitool("check", call);
    expect(r.ok).toBe(false);
    expect(r.stdout + r.stderr).toMatch(/ip -6 rule fwmark 0xa\/0xff lookup 200 is missing/);
  });

  it("private IPv6 (the cluster's ULA) goes direct, never into the tunnel", async () => {
    const tunnelled = await capture(pod, "te-eth0", "ip6 and net fd00::/8");
    expect(await ping(pod, "fd00:1::1")).toBe(true); // the router, across node-a: private
    expect(await tunnelled.stop()).toEqual([]);
  });
});
