/**
 * tenant-egress-gateway in the lab: two tenants on one gateway, pods attached through the real
 * CNI chain on another node, traffic measured at the internet host. Rates are asserted loosely
 * (the precise figures are the benchmark's); what must hold exactly is asserted exactly:
 * idempotence, isolation, nothing unclassified, counters surviving a live rate change.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Network, writeBridgeConflist } from "../../src/lab/cni-client.js";
import { rulePackets } from "../../src/lab/counters.js";
import { applyGateway, gatewayCli } from "../../src/lab/gateway-cli.js";
import { runPlugin } from "../../src/lab/plugin-runner.js";
import type { Background } from "../../src/lab/process.js";
import { attachTenantPods, labTenant, pluginTenants } from "../../src/lab/tenants.js";
import { createLab, type Lab, uniquePrefix } from "../../src/lab/topology.js";
import { awaitPush, iperf, sourceSeenBy, startInetServers } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";

let lab: Lab;
let servers: Background;
let gw: { ns: string; ip: string };
let net: Network;
let pods: Record<string, string>;

const red = labTenant("red", 300, "172.30.0.0/24", { upload: "10mbit", download: "10mbit" });
const blue = labTenant("blue", 400, "172.31.0.0/24", { upload: "4mbit", download: "6mbit" });
const config = (tenants: unknown[]) => ({ linkRate: "100mbit", tenants });

beforeAll(async () => {
  lab = await createLab(uniquePrefix("g"));
  servers = await startInetServers(lab.ns.inet);
  gw = await lab.addGateway("gw", 2);
  await applyGateway(gw.ns, lab.dir, config([red, blue]));
  net = await writeBridgeConflist({
    name: `${lab.prefix}-net`,
    dir: lab.dir,
    egress: { tenants: pluginTenants(gw.ip, [red, blue]) },
  });
  pods = await attachTenantPods(lab, net, [red, blue]);
});

afterAll(async () => {
  await servers?.stop();
  await lab?.teardown();
});

const ratio = (measured: number, rate: number) => measured / rate;

describe("tenant-egress-gateway", () => {
  it("apply is idempotent: a second apply changes nothing", async () => {
    // The pods have transmitted, so the first apply adds their neighbour entries.
    for (const p of Object.values(pods)) await sourceSeenBy(p);
    await applyGateway(gw.ns, lab.dir, config([red, blue]));
    const r = await applyGateway(gw.ns, lab.dir, config([red, blue]));
    expect(r.stdout).toBe("apply: nothing to change (uplink eth0)\n");
  });

  it("SNATs each tenant's traffic to the gateway", async () => {
    expect(await sourceSeenBy(pods.red!)).toBe(gw.ip);
    expect(await sourceSeenBy(pods.blue!)).toBe(gw.ip);
  });

  it("shapes upload and download to each tenant's rate (loosely: 85-102 %)", async () => {
    const up = await iperf(pods.red!, { port: 5201, seconds: 4 });
    const down = await iperf(pods.red!, { port: 5201, seconds: 4, reverse: true });
    expect(ratio(up.bitsPerSecond, 10e6)).toBeGreaterThan(0.85);
    expect(ratio(up.bitsPerSecond, 10e6)).toBeLessThan(1.02);
    expect(ratio(down.bitsPerSecond, 10e6)).toBeGreaterThan(0.85);
    expect(ratio(down.bitsPerSecond, 10e6)).toBeLessThan(1.02);
  });

  it("keeps two saturating tenants at their own rates", async () => {
    const [r, b] = await Promise.all([
      iperf(pods.red!, { port: 5201, seconds: 4 }),
      iperf(pods.blue!, { port: 5202, seconds: 4 }),
    ]);
    expect(ratio(r.bitsPerSecond, 10e6)).toBeGreaterThan(0.85);
    expect(ratio(r.bitsPerSecond, 10e6)).toBeLessThan(1.02);
    expect(ratio(b.bitsPerSecond, 4e6)).toBeGreaterThan(0.85);
    expect(ratio(b.bitsPerSecond, 4e6)).toBeLessThan(1.02);
  });

  it("status reports both directions per tenant, and nothing goes out unclassified", async () => {
    const r = await gatewayCli(gw.ns, ["status", "--json", "--interval", "0.2"]);
    expect(r.exitCode).toBe(0);
    const s = JSON.parse(r.stdout) as {
      directPackets: number;
      tenants: Array<{ name: string; upload: { rate: number; bytes: number }; download: { bytes: number } }>;
    };
    expect(s.directPackets).toBe(0);
    const redStatus = s.tenants.find((t) => t.name === "red")!;
    expect(redStatus.upload.rate).toBe(10e6);
    expect(redStatus.upload.bytes).toBeGreaterThan(1_000_000);
    expect(redStatus.download.bytes).toBeGreaterThan(1_000_000);
    const text = await gatewayCli(gw.ns, ["status"]);
    expect(text.stdout).toMatch(/red\s+upload\s+10mbit/);
  });

  it("changes a rate in place: the other tenant's counters are not reset", async () => {
    const before = JSON.parse((await gatewayCli(gw.ns, ["status", "--json", "--interval", "0.1"])).stdout) as {
      tenants: Array<{ name: string; upload: { bytes: number } }>;
    };
    const r = await applyGateway(gw.ns, lab.dir, config([{ ...red, upload: { rate: "20mbit" } }, blue]));
    expect(r.stdout).toMatch(
      /class 7e:\S+ on eth0 has rate 10000000 \(want 20000000\), ceil 10000000 \(want 20000000\)/,
    );
    expect(r.stdout).not.toMatch(/missing/);
    const after = JSON.parse(
      (await gatewayCli(gw.ns, ["status", "--json", "--interval", "0.1"])).stdout,
    ) as typeof before;
    const bytes = (s: typeof before, n: string) => s.tenants.find((t) => t.name === n)!.upload.bytes;
    expect(bytes(after, "blue")).toBeGreaterThanOrEqual(bytes(before, "blue"));
    expect(bytes(after, "red")).toBeGreaterThanOrEqual(bytes(before, "red"));
    const up = await iperf(pods.red!, { port: 5201, seconds: 3 });
    expect(ratio(up.bitsPerSecond, 20e6)).toBeGreaterThan(0.85);
    await applyGateway(gw.ns, lab.dir, config([red, blue]));
  });

  it("delivers a server push to a pod idle past its gateway's neighbour cache", async () => {
    // A one-shot apply serves the pods learned by then (`run` follows them as they come): the
    // pod has transmitted, so the gateway knows it.
    expect(await sourceSeenBy(pods.red!)).toBe(gw.ip);
    const learned = await applyGateway(gw.ns, lab.dir, config([red, blue]));
    expect(learned.stdout).not.toMatch(/left over/);
    const neigh = await run(["ip", "-n", gw.ns, "neigh", "show", "dev", "tev300", "nud", "permanent"]);
    expect(neigh.stdout.trim().split("\n")).toHaveLength(1);
    const push = awaitPush(pods.red!, 3);
    await new Promise((r) => setTimeout(r, 1000));
    // What ageing would do to learned state: forget every dynamic neighbour entry.
    await run(["ip", "-n", gw.ns, "neigh", "flush", "dev", "tev300"]);
    expect(await push).toBe("push");
    const link = await run(["ip", "-n", gw.ns, "-d", "link", "show", "tev300"]);
    expect(link.stdout).toMatch(/ageing 4000000/);
  });

  it("drops VXLAN from a source outside allowedSources", async () => {
    // A host on node-b, outside the red tenant's allowed 10.22.0.0/24, posing as a red pod.
    const rogue = await lab.addGateway("rogue", 50);
    const prevResult = {
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", sandbox: "/x" }],
      ips: [{ address: "10.23.0.50/24", interface: 0 }],
    };
    const add = await runPlugin(lab.ns.nodeA, `/run/netns/${rogue.ns}`, "ADD", {
      cniVersion: "1.0.0",
      name: "rogue",
      type: "tenant-egress",
      gateway: gw.ip,
      vni: 300,
      overlaySubnet: "172.30.0.0/24",
      prevResult,
    });
    expect(add.exitCode).toBe(0);
    await expect(sourceSeenBy(rogue.ns, undefined, 2)).rejects.toThrow(/no answer/);
    expect(await rulePackets(gw.ns, "filter", "TEG-IN-300", /-j DROP$/)).toBeGreaterThan(0);
  });

  it("removes a tenant dropped from the file, and only that tenant", async () => {
    const r = await applyGateway(gw.ns, lab.dir, config([red]));
    expect(r.stdout).toMatch(/link tev400 is left over/);
    const links = await run(["ip", "-n", gw.ns, "-o", "link"]);
    expect(links.stdout).not.toMatch(/tev400/);
    expect(links.stdout).toMatch(/tev300/);
    const ipt = await run(["ip", "netns", "exec", gw.ns, "iptables-save"]);
    expect(ipt.stdout).not.toMatch(/TEG-\w+-400/);
    expect(await sourceSeenBy(pods.red!)).toBe(gw.ip);
  });

  it("reset removes everything it owns and nothing else", async () => {
    await run([
      "ip",
      "netns",
      "exec",
      gw.ns,
      "iptables",
      "-w",
      "-t",
      "nat",
      "-A",
      "POSTROUTING",
      "-o",
      "eth0",
      "-s",
      "192.0.2.0/24",
      "-j",
      "MASQUERADE",
    ]);
    const r = await gatewayCli(gw.ns, ["reset"]);
    expect(r.exitCode).toBe(0);
    const ipt = await run(["ip", "netns", "exec", gw.ns, "iptables-save"]);
    expect(ipt.stdout).not.toMatch(/TEG-/);
    expect(ipt.stdout).toMatch(/-s 192.0.2.0\/24 -o eth0 -j MASQUERADE/);
    const tc = await run(["ip", "netns", "exec", gw.ns, "tc", "qdisc", "show", "dev", "eth0"]);
    expect(tc.stdout).not.toMatch(/htb/);
    const again = await gatewayCli(gw.ns, ["reset"]);
    expect(again.stdout).toMatch(/nothing to change/);
  });
});
