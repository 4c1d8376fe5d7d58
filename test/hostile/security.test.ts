/**
 * Limits a privileged pod cannot escape. A tenant pod with CAP_NET_ADMIN flushes its own mangle
 * and nat rules and deletes the ip rule: without enforcement its public traffic then leaves
 * unshaped; with enforcement the node drops it. A pod of one tenant building its own tunnel with
 * another tenant's VNI: the gateway cannot tell them apart (both tenants' pods send from the
 * same pod network), the node can. And GC removes exactly the enforcement of pods that are gone.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cni, type Network, writeBridgeConflist } from "../../src/lab/cni-client.js";
import { applyGateway } from "../../src/lab/gateway-cli.js";
import type { Background } from "../../src/lab/process.js";
import { createLab, ipIn, type Lab, uniquePrefix } from "../../src/lab/topology.js";
import { ping, sourceSeenBy, startInetServers } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";
import { runPlugin } from "../integration/plugin-driver.js";

let lab: Lab;
let servers: Background;
let gw: { ns: string; ip: string };
const nets: Record<"enforced" | "open", Network> = {} as never;

const tenants = (ip: string) => ({
  red: { gateway: ip, vni: 300, overlaySubnet: "172.30.0.0/24" },
  blue: { gateway: ip, vni: 400, overlaySubnet: "172.31.0.0/24" },
});

beforeAll(async () => {
  lab = await createLab(uniquePrefix("x"));
  servers = await startInetServers(lab.ns.inet);
  gw = await lab.addGateway("gw", 2);
  const t = (name: string, vni: number, third: number) => ({ name, vni, overlaySubnet: `172.${third}.0.0/24`, allowedSources: ["10.22.0.0/24"], upload: { rate: "50mbit" }, download: { rate: "50mbit" } });
  await applyGateway(gw.ns, lab.dir, { tenants: [t("red", 300, 30), t("blue", 400, 31)] });
  nets.enforced = await writeBridgeConflist({ name: `${lab.prefix}-enf`, dir: lab.dir, egress: { tenants: tenants(gw.ip), enforce: true } });
  nets.open = await writeBridgeConflist({ name: `${lab.prefix}-open`, dir: lab.dir, egress: { tenants: tenants(gw.ip) } });
});

afterAll(async () => {
  await servers?.stop();
  await lab?.teardown();
});

async function redPod(name: string, net: Network): Promise<{ ns: string; ip: string }> {
  const ns = await lab.addPodNamespace(name);
  const result = JSON.parse(await cni("add", { node: lab.ns.nodeA, network: net, pod: ns, cniArgs: "IgnoreUnknown=1;EGRESS_TENANT=red" })) as { ips: Array<{ address: string }> };
  return { ns, ip: result.ips[0]!.address.split("/")[0]! };
}

/** What a privileged pod can do to its own namespace. */
async function tearOwnRulesDown(ns: string): Promise<void> {
  for (const table of ["mangle", "nat"]) await run(["ip", "netns", "exec", ns, "iptables", "-w", "-t", table, "-F"]);
  await run(["ip", "-n", ns, "rule", "del", "pref", "1000"]);
}

describe("a privileged pod flushing its own rules", () => {
  it("escapes the tunnel when the node does not enforce", async () => {
    const pod = await redPod("open", nets.open);
    expect(await sourceSeenBy(pod.ns)).toBe(gw.ip);
    await tearOwnRulesDown(pod.ns);
    expect(await sourceSeenBy(pod.ns)).toBe(pod.ip);
  });

  it("is stopped by the node's enforcement, while its private traffic still flows", async () => {
    const pod = await redPod("enf", nets.enforced);
    expect(await sourceSeenBy(pod.ns)).toBe(gw.ip);
    await tearOwnRulesDown(pod.ns);
    await expect(sourceSeenBy(pod.ns, undefined, 2)).rejects.toThrow(/no answer/);
    expect(await ping(pod.ns, "10.0.2.2")).toBe(true);
  });
});

describe("a pod of one tenant borrowing another tenant's VNI", () => {
  /** Builds, inside a red pod, its own tunnel into blue's overlay, and routes the internet host through it. */
  async function borrowBlue(ns: string, podIP: string): Promise<void> {
    await tearOwnRulesDown(ns);
    await ipIn(ns, [
      `link add rogue type vxlan id 400 dstport 4789 local ${podIP} remote ${gw.ip} dev eth0 nolearning`,
      "link set rogue address 02:7e:ac:1f:00:4d mtu 1450 up",
      "addr add 172.31.0.77 peer 172.31.0.1 dev rogue",
      "route add 203.0.113.10/32 via 172.31.0.1 dev rogue onlink",
    ]);
    await run(["ip", "netns", "exec", ns, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-o", "rogue", "-j", "SNAT", "--to-source", "172.31.0.77"]);
  }

  it("gets through a gateway that only sees the source (both tenants share the pod network)", async () => {
    const pod = await redPod("borrow-open", nets.open);
    await borrowBlue(pod.ns, pod.ip);
    expect(await sourceSeenBy(pod.ns)).toBe(gw.ip);
  });

  it("is dropped on the node when it enforces", async () => {
    const pod = await redPod("borrow-enf", nets.enforced);
    await borrowBlue(pod.ns, pod.ip);
    await expect(sourceSeenBy(pod.ns, undefined, 2)).rejects.toThrow(/no answer/);
    const chains = await run(["ip", "netns", "exec", lab.ns.nodeA, "iptables", "-w", "-L", "-v", "-x", "-n"]);
    // The chain's "any other VXLAN" rule counted the borrowed tunnel's packets.
    expect(chains.stdout).toMatch(/^\s+[1-9]\d*\s+\d+\s+DROP\s+17\s+--\s+\*\s+\*\s+0\.0\.0\.0\/0\s+0\.0\.0\.0\/0\s+udp dpt:4789\s*$/m);
  });
});

describe("enforcement lifecycle", () => {
  // cnitool's container ID: "cnitool-" and the first 10 bytes of the netns path's SHA-512.
  const containerId = (pod: string) => `cnitool-${createHash("sha512").update(`/run/netns/${pod}`).digest("hex").slice(0, 20)}`;
  const enforcementChains = async () => (await run(["ip", "netns", "exec", lab.ns.nodeA, "iptables-save", "-t", "filter"])).stdout.match(/^:TE-ENF-\S+/gm) ?? [];

  it("CHECK covers it, DEL removes it, and GC removes only the chains of pods that are gone", async () => {
    const before = (await enforcementChains()).length;
    const kept = await redPod("gc-kept", nets.enforced);
    const lost = await redPod("gc-lost", nets.enforced);
    expect((await enforcementChains()).length).toBe(before + 2);
    await cni("check", { node: lab.ns.nodeA, network: nets.enforced, pod: kept.ns, cniArgs: "IgnoreUnknown=1;EGRESS_TENANT=red" });

    // A pod whose DEL never ran: its namespace is simply gone.
    await run(["ip", "netns", "del", lost.ns]);
    const valid = (await enforcementChains()).length - 1;
    const gc = await runPlugin(lab.ns.nodeA, "", "GC", {
      cniVersion: "1.1.0",
      name: nets.enforced.name,
      type: "tenant-egress",
      enforce: true,
      "cni.dev/valid-attachments": [
        { containerID: containerId(kept.ns), ifname: "eth0" },
        ...["enf", "borrow-enf"].map((n) => ({ containerID: containerId(`${lab.prefix}-${n}`), ifname: "eth0" })),
      ],
    });
    expect(gc).toMatchObject({ exitCode: 0, stdout: "" });
    expect((await enforcementChains()).length).toBe(valid);
    const ruleset = (await run(["ip", "netns", "exec", lab.ns.nodeA, "iptables-save", "-t", "filter"])).stdout;
    expect(ruleset).toContain(`tenant-egress:${containerId(kept.ns)}/eth0`);
    expect(ruleset).not.toContain(`tenant-egress:${containerId(lost.ns)}/eth0`);

    await cni("del", { node: lab.ns.nodeA, network: nets.enforced, pod: kept.ns, cniArgs: "IgnoreUnknown=1;EGRESS_TENANT=red" });
    expect((await run(["ip", "netns", "exec", lab.ns.nodeA, "iptables-save", "-t", "filter"])).stdout).not.toContain(containerId(kept.ns));
  });
});
