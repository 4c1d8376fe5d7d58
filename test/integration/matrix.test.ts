/**
 * The plugin across the CNI versions the Debian reference plugins speak, after both bridge and
 * ptp, and with the overlay address delegated to an IPAM plugin (host-local), all through libcni.
 */
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cni, cnitool, writeBridgeConflist, writePtpConflist } from "../../src/lab/cni-client.js";
import type { Background } from "../../src/lab/process.js";
import { createLab, type Lab, POD6_SUBNET, uniquePrefix } from "../../src/lab/topology.js";
import { sourceSeenBy, startInetServers } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";
import { plainGateway } from "./plain-gateway.js";

let lab: Lab;
let servers: Background;
let gw: { ns: string; ip: string };

beforeAll(async () => {
  lab = await createLab(uniquePrefix("m"));
  servers = await startInetServers(lab.ns.inet);
  gw = await lab.addGateway("gw", 2);
  await plainGateway(gw.ns, gw.ip);
});

afterAll(async () => {
  await servers?.stop();
  await lab?.teardown();
});

describe("CNI versions and main plugins", () => {
  it.each(["0.3.1", "0.4.0", "1.0.0"])("works chained after bridge at cniVersion %s", async (version) => {
    const tag = version.replaceAll(".", "");
    const net = await writeBridgeConflist({
      name: `${lab.prefix}-v${tag}`,
      dir: lab.dir,
      cniVersion: version,
      egress: { gateway: gw.ip },
    });
    const pod = await lab.addPodNamespace(`v${tag}`);
    const call = { node: lab.ns.nodeA, network: net, pod };
    await cni("add", call);
    expect(await sourceSeenBy(pod)).toBe(gw.ip);
    if (version !== "0.3.1") await cni("check", call);
    await cni("del", call);
    await run(["ip", "netns", "del", pod]);
  });

  it.each(["0.4.0", "1.0.0"])("passes a dual-stack result through at cniVersion %s", async (version) => {
    const tag = version.replaceAll(".", "");
    // Each network its own part of the shared IPv6 range (they share the bridge).
    const block = version === "0.4.0" ? "a" : "b";
    const net = await writeBridgeConflist({
      name: `${lab.prefix}-d${tag}`,
      dir: lab.dir,
      cniVersion: version,
      ipv6Subnet: POD6_SUBNET,
      ipv6Range: { start: `fd00:22::${block}0`, end: `fd00:22::${block}f` },
      egress: { gateway: gw.ip },
    });
    const pod = await lab.addPodNamespace(`d${tag}`);
    const call = { node: lab.ns.nodeA, network: net, pod };
    const result = JSON.parse(await cni("add", call)) as { ips: Array<{ address: string; version?: string }> };
    // 0.4.0 results name each IP's version, 1.0.0 results do not: the plugin reads both.
    expect(result.ips.map((ip) => ip.address)).toEqual([
      expect.stringMatching(/^10\.22\.0\./),
      expect.stringMatching(new RegExp(`^fd00:22::${block}[0-9a-f]/64$`)),
    ]);
    expect(result.ips.some((ip) => ip.version === "6")).toBe(version === "0.4.0");
    expect(await sourceSeenBy(pod)).toBe(gw.ip);
    await cni("check", call);
    await cni("del", call);
    await run(["ip", "netns", "del", pod]);
  });

  it("works chained after ptp", async () => {
    const net = await writePtpConflist({ name: `${lab.prefix}-ptp`, dir: lab.dir, egress: { gateway: gw.ip } });
    const pod = await lab.addPodNamespace("ptp");
    const call = { node: lab.ns.nodeA, network: net, pod };
    await cni("add", call);
    expect(await sourceSeenBy(pod)).toBe(gw.ip);
    await cni("check", call);
    await cni("del", call);
  });
});

describe("overlay address from an IPAM plugin", () => {
  it("allocates on ADD, verifies on CHECK and releases on DEL", async () => {
    const name = `${lab.prefix}-ipam`;
    const dataDir = join(lab.dir, "overlay-ipam");
    const net = await writeBridgeConflist({
      name,
      dir: lab.dir,
      egress: {
        gateway: gw.ip,
        ipam: {
          type: "host-local",
          dataDir,
          ranges: [[{ subnet: "172.16.0.0/16", rangeStart: "172.16.100.10", rangeEnd: "172.16.100.20" }]],
        },
      },
    });
    const pod = await lab.addPodNamespace("ipam");
    const call = { node: lab.ns.nodeA, network: net, pod };
    await cni("add", call);
    const addr = await run(["ip", "-n", pod, "-o", "-4", "addr", "show", "dev", "te-eth0"]);
    expect(addr.stdout).toMatch(/inet 172\.16\.100\.1\d peer 172\.16\.0\.1\/32/);
    expect(await sourceSeenBy(pod)).toBe(gw.ip);
    await cni("check", call);
    const leases = async () =>
      existsSync(join(dataDir, name)) ? (await readdir(join(dataDir, name))).filter((f) => f.startsWith("172.")) : [];
    expect(await leases()).toHaveLength(1);
    await cni("del", call);
    expect(await leases()).toHaveLength(0);
  });

  it("refuses a dual-stack pod when IPAM gives no overlay IPv6, naming the fix, and releases the IPv4 lease", async () => {
    const name = `${lab.prefix}-ipam4`;
    const dataDir = join(lab.dir, "ipam4");
    const net = await writeBridgeConflist({
      name,
      dir: lab.dir,
      ipv6Subnet: POD6_SUBNET,
      ipv6Range: { start: "fd00:22::e0", end: "fd00:22::ef" },
      egress: {
        gateway: gw.ip,
        ipam: { type: "host-local", dataDir, ranges: [[{ subnet: "172.16.0.0/16", rangeStart: "172.16.101.10" }]] },
      },
    });
    const pod = await lab.addPodNamespace("ipam4");
    const r = await cnitool("add", { node: lab.ns.nodeA, network: net, pod });
    expect(r.ok).toBe(false);
    expect(r.stdout + r.stderr).toMatch(/returned no IPv6 address for the dual-stack pod .*overlaySubnet6/);
    expect((await readdir(join(dataDir, name))).filter((f) => f.startsWith("172."))).toHaveLength(0);
    await cni("del", { node: lab.ns.nodeA, network: net, pod });
  });

  it("reports an IPAM address outside the overlay subnet and releases it", async () => {
    const name = `${lab.prefix}-badipam`;
    const dataDir = join(lab.dir, "bad-ipam");
    const net = await writeBridgeConflist({
      name,
      dir: lab.dir,
      egress: { gateway: gw.ip, ipam: { type: "host-local", dataDir, ranges: [[{ subnet: "192.168.77.0/24" }]] } },
    });
    const pod = await lab.addPodNamespace("badipam");
    const r = await cnitool("add", { node: lab.ns.nodeA, network: net, pod });
    expect(r.ok).toBe(false);
    expect(r.stdout + r.stderr).toMatch(/outside the overlay subnet 172\.16\.0\.0\/16/);
    expect((await readdir(join(dataDir, name))).filter((f) => f.startsWith("192."))).toHaveLength(0);
    await cni("del", { node: lab.ns.nodeA, network: net, pod });
  });
});
