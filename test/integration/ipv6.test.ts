/**
 * Dual stack end to end: the lab's pod network has an IPv4 and an IPv6 range (bridge +
 * host-local), the gateway and the router have IPv6 uplinks, and a tenant pod is attached through
 * the real chain with cnitool. The underlay stays IPv4. What is asserted is what a user of a
 * dual-stack cluster cares about: the chain's result still carries both families unchanged, the
 * pod's IPv4 leaves through the gateway as before, and its private IPv6 (the cluster's ULA) goes
 * direct, never into the tunnel; a narrower path past the gateway answers with Packet Too Big
 * and that reaches the pod; the gateway's IPv6 state goes with its tenant and with `reset`; and
 * an open IPv6 flow outlives a rebuilt tunnel (the pod's IPv6 entry comes back from conntrack)
 * and a killed and restarted gateway daemon.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyConfig, reset } from "../../src/gateway/commands.js";
import { parseGatewayConfig } from "../../src/gateway/config.js";
import { cni, cnitool, type Network, writeBridgeConflist } from "../../src/lab/cni-client.js";
import { rulePackets, snmpCounter } from "../../src/lab/counters.js";
import { applyGateway, gatewayCli, startGatewayDaemon } from "../../src/lab/gateway-cli.js";
import { runPlugin } from "../../src/lab/plugin-runner.js";
import type { Background } from "../../src/lab/process.js";
import { waitSettled } from "../../src/lab/snapshot.js";
import { labTenant, pluginTenants } from "../../src/lab/tenants.js";
import { createLab, INET6_IP, type Lab, POD6_SUBNET, uniquePrefix } from "../../src/lab/topology.js";
import { capture, iperf, ping, sourceSeenBy, startInetServers, upload } from "../../src/lab/traffic.js";
import { run } from "../../src/net/run.js";
import { defaultOverlaySubnet6 } from "../../src/net/vxlan.js";

let lab: Lab;
let servers: Background;
let gw: { ns: string; ip: string; ip6: string };
let net: Network;
let pod: string;
let result: { ips: Array<{ address: string }> };

const acme = labTenant("acme", 100, "172.16.0.0/24");
const gatewayConfig = { linkRate: "100mbit", tenants: [acme] };

beforeAll(async () => {
  lab = await createLab(uniquePrefix("v6"));
  servers = await startInetServers(lab.ns.inet);
  gw = await lab.addGateway("gw", 2);
  await applyGateway(gw.ns, lab.dir, gatewayConfig);
  net = await writeBridgeConflist({
    name: `${lab.prefix}-net`,
    dir: lab.dir,
    ipv6Subnet: POD6_SUBNET,
    egress: { tenants: pluginTenants(gw.ip, [acme]) },
  });
  pod = await lab.addPodNamespace("pod");
  result = JSON.parse(
    await cni("add", { node: lab.ns.nodeA, network: net, pod, cniArgs: "IgnoreUnknown=1;EGRESS_TENANT=acme" }),
  );
  await waitSettled(pod);
});

/** tenant-egress alone, as the chain runs it for this pod (its conflist entry, the chain's result as prevResult). */
async function ourPlugin(command: string) {
  const conflist = JSON.parse(await readFile(join(net.confDir, `10-${net.name}.conflist`), "utf8")) as {
    cniVersion: string;
    plugins: Array<{ type: string }>;
  };
  const conf = {
    cniVersion: conflist.cniVersion,
    name: net.name,
    ...conflist.plugins.find((p) => p.type === "tenant-egress")!,
    ...(command === "DEL" ? {} : { prevResult: result }),
  };
  return runPlugin(lab.ns.nodeA, `/run/netns/${pod}`, command, conf, { CNI_ARGS: "EGRESS_TENANT=acme" });
}

/** The pod's overlay IPv6: the address on its end of the tunnel. */
async function tunnelIP6(): Promise<string> {
  const r = await run(["ip", "-n", pod, "-6", "-json", "addr", "show", "dev", "te-eth0", "scope", "global"]);
  const [link] = JSON.parse(r.stdout) as Array<{ addr_info: Array<{ local: string }> }>;
  return link!.addr_info[0]!.local;
}

/**
 * What the gateway holds for the IPv6 of the tenant on `vni`: global addresses on its tunnel,
 * every ip6tables line naming its tunnel, its chains or its overlay IPv6 prefix (the default for
 * the VNI: the lab's tenants set none), and neighbour
 * entries on its tunnel or for the pod's overlay IPv6 (link-local ones go with the tunnel).
 */
async function gatewayIPv6(vni: number, podIP6: string): Promise<string[]> {
  const inGw = async (...args: string[]) => (await run(["ip", "netns", "exec", gw.ns, ...args])).stdout;
  const lines = (text: string) => text.split("\n").filter((l) => l.trim() !== "");
  const dev = `tev${vni}`;
  const prefix6 = defaultOverlaySubnet6(vni);
  const addrs = lines(await inGw("ip", "-6", "-o", "addr", "show", "scope", "global"))
    .filter((l) => l.includes(` ${dev} `))
    .map((l) => `addr ${l.replace(/\\\s+/g, " ")}`);
  const ours = new RegExp(`\\b${dev}\\b|-${vni}\\b|${prefix6}`);
  const rules = lines(await inGw("ip6tables-save"))
    .filter((l) => !l.startsWith("#") && ours.test(l))
    .map((l) => `ip6tables ${l}`);
  const neigh = lines(await inGw("ip", "-6", "neigh", "show"))
    .filter((l) => (l.includes(` dev ${dev} `) || l.startsWith(`${podIP6} `)) && !l.startsWith("fe80:"))
    .map((l) => `neigh ${l}`);
  return [...addrs, ...rules, ...neigh];
}

/**
 * Gives acme its tunnel back after a test took it away: the pod's IPv6 must work again at
 * once, with nothing done in the pod (the new tunnel cannot solicit the pod, and the pod would
 * solicit the gateway again only once its own entry for it goes stale).
 */
async function rebuildAcme(): Promise<void> {
  await applyGateway(gw.ns, lab.dir, gatewayConfig);
  expect(await sourceSeenBy(pod, INET6_IP)).toBe(gw.ip6);
}

/** Bytes the internet host has acknowledged on the pod's IPv6 connections to `port`. */
async function bytesAcked(port: number): Promise<number> {
  const r = await run(["ip", "netns", "exec", pod, "ss", "-Htin", "dst", `[${INET6_IP}]:${port}`]);
  return [...r.stdout.matchAll(/bytes_acked:(\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
}

/** Milliseconds until the pod's IPv6 upload to `port` has more acknowledged than now; throws after `limitMs`. */
async function resumes(port: number, limitMs: number): Promise<number> {
  const from = await bytesAcked(port);
  const started = Date.now();
  while ((await bytesAcked(port)) <= from) {
    if (Date.now() - started > limitMs) throw new Error(`the open IPv6 flow did not resume within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - started;
}

/** An IPv6 upload from the pod, 5 Mbit/s for `seconds`; resolves with iperf3's error, if any. */
function openFlow(port: number, seconds: number): Promise<string | undefined> {
  const args = ["-c", INET6_IP, "-p", String(port), "-t", String(seconds), "-b", "5M", "-J"];
  return run(["ip", "netns", "exec", pod, "iperf3", ...args], { allowFailure: true }).then(
    (r) => (JSON.parse(r.stdout) as { error?: string }).error,
  );
}

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
    expect(await rulePackets(pod, "mangle", "TE-MSS-eth0", /^-i te-eth0 .*TCPMSS/, 6)).toBeGreaterThan(0);
    expect(await snmpCounter(pod, "Ip6", "FragCreates")).toBe(0);
  });

  it("CHECK passes with the IPv6 pieces and names one that is missing", async () => {
    const call = { node: lab.ns.nodeA, network: net, pod, cniArgs: "IgnoreUnknown=1;EGRESS_TENANT=acme" };
    await cni("check", call);
    await run(["ip", "-n", pod, "-6", "rule", "del", "pref", "1000"]);
    const r = await cnitool("check", call);
    expect(r.ok).toBe(false);
    expect(r.stdout + r.stderr).toMatch(/ip -6 rule fwmark 0xa\/0xff lookup 200 is missing/);
    // A repeated ADD of the plugin (the chain's ADD would redo the bridge) puts it back: the later tests need it.
    const add = await ourPlugin("ADD");
    expect({ exitCode: add.exitCode, stderr: add.stderr }).toEqual({ exitCode: 0, stderr: "" });
    await cni("check", call);
  });

  it("private IPv6 (the cluster's ULA) goes direct, never into the tunnel", async () => {
    const tunnelled = await capture(pod, "te-eth0", "ip6 and net fd00::/8");
    expect(await ping(pod, "fd00:1::1")).toBe(true); // the router, across node-a: private
    expect(await tunnelled.stop()).toEqual([]);
  });

  it("an IPv4 and an IPv6 upload at the same time together stay within the tenant's one limit; each alone gets all of it", async () => {
    const rate = 20e6;
    const v4 = { port: 5201, seconds: 4 };
    const v6 = { port: 5202, seconds: 4, host: INET6_IP };
    const alone4 = (await iperf(pod, v4)).bitsPerSecond / rate;
    const alone6 = (await iperf(pod, v6)).bitsPerSecond / rate;
    const [both4, both6] = (await Promise.all([iperf(pod, v4), iperf(pod, v6)])).map((r) => r.bitsPerSecond / rate);
    process.stdout.write(
      `dual-stack upload of ${rate / 1e6} Mbit/s: IPv4 alone ${alone4.toFixed(2)}, IPv6 alone ${alone6.toFixed(2)}, together ${both4!.toFixed(2)} + ${both6!.toFixed(2)}\n`,
    );
    // Goodput of the rate (loosely, as the gateway suite): IPv6's 20 more header bytes cost ~1.5 %.
    for (const alone of [alone4, alone6]) {
      expect(alone).toBeGreaterThan(0.85);
      expect(alone).toBeLessThan(1.02);
    }
    // One limit for both families: together as much as one alone, not twice. How the two flows
    // split it is up to the class's leaf queue (not asserted: a FIFO leaf lets one TCP flow lead).
    expect(both4! + both6!).toBeGreaterThan(0.85);
    expect(both4! + both6!).toBeLessThan(1.02);
  });

  it("ICMPv6 Packet Too Big from a router beyond the gateway reaches the pod, and TCP over the narrower path completes", async () => {
    // The router's route to the internet host narrowed to IPv6's minimum MTU (a route MTU, so the
    // internet host still offers MSS 1440): the pod's full-size segments (1450 bytes, the tunnel's
    // MTU) cross the gateway and hit it. IPv6 routers never fragment, so the router answers the
    // gateway's IPv6 (the source it sees) with Packet Too Big; the gateway's conntrack must turn
    // that back to the pod's overlay IPv6 and tunnel it, and the pod's NAT66 back to its own IPv6.
    const narrowed = ["2001:db8:113::/64", "dev", "to-inet", "metric", "1"];
    await run(["ip", "-n", lab.ns.router, "-6", "route", "add", ...narrowed, "mtu", "1280"]);
    try {
      // ICMPv6 type 2 (ip6[40]: the first byte after the fixed header, with no extension headers).
      const tooBig = await capture(pod, "te-eth0", "icmp6 and ip6[40] == 2", true);
      const r = await iperf(pod, { port: 5203, seconds: 2, host: INET6_IP });
      const seen = (await tooBig.stop()).join("\n");
      // From the router's address towards the gateway, to the pod's overlay IPv6 (the tunnel's).
      expect(seen).toContain(`fd00:2::1 > ${await tunnelIP6()}: [icmp6 sum ok] ICMP6, packet too big, mtu 1280`);
      // Not black-holed: the transfer went on at (loosely) the tenant's rate in smaller segments.
      expect(r.bitsPerSecond / 20e6).toBeGreaterThan(0.5);
      const route = await run(["ip", "netns", "exec", pod, "ip", "-6", "route", "get", INET6_IP]);
      expect(route.stdout).toMatch(/mtu 1280/);
    } finally {
      await run(["ip", "-n", lab.ns.router, "-6", "route", "del", ...narrowed]);
      await run(["ip", "netns", "exec", pod, "ip", "-6", "route", "flush", "cache"]);
    }
  });

  it("a tenant removed from the gateway's file leaves none of its IPv6 behind; another tenant's stays", async () => {
    expect(await sourceSeenBy(pod, INET6_IP)).toBe(gw.ip6); // the gateway has learned the pod's IPv6
    const podIP6 = await tunnelIP6();
    const held = await gatewayIPv6(100, podIP6);
    expect(held).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^addr .* tev100 .* fd00:64:7e7e::1\/48 /),
        "ip6tables -A TEG-CLS-100 -i tev100 -o eth0 -j CLASSIFY --set-class 007e:0073",
        "ip6tables -A TEG-FWD-100 -i tev100 -j ACCEPT",
        "ip6tables -A TEG-SNAT-100 -s fd00:64:7e7e::/48 -o eth0 -j MASQUERADE",
        expect.stringMatching(new RegExp(`^neigh ${podIP6} dev tev100 lladdr `)),
      ]),
    );
    const other = { ...acme, name: "other", vni: 101, overlaySubnet: "172.17.0.0/24" };
    await applyGateway(gw.ns, lab.dir, { linkRate: "100mbit", tenants: [other] });
    expect(await gatewayIPv6(100, podIP6)).toEqual([]);
    // The other tenant's twin of each (its own overlay IPv6 prefix; no pod of it has spoken yet).
    expect((await gatewayIPv6(101, podIP6)).filter((l) => !l.startsWith("neigh"))).toHaveLength(
      held.filter((l) => !l.startsWith("neigh")).length,
    );
    await rebuildAcme();
  });

  it("reset leaves none of the gateway's IPv6 behind", async () => {
    expect(await sourceSeenBy(pod, INET6_IP)).toBe(gw.ip6);
    const podIP6 = await tunnelIP6();
    expect((await gatewayIPv6(100, podIP6)).some((l) => l.startsWith("neigh"))).toBe(true);
    expect((await gatewayCli(gw.ns, ["reset"])).exitCode).toBe(0);
    expect(await gatewayIPv6(100, podIP6)).toEqual([]);
    const inGw = async (...args: string[]) => (await run(["ip", "netns", "exec", gw.ns, ...args])).stdout;
    // Its chains are gone (the nftables one that pairs IPv6 with MACs too, its table left empty);
    // the conntrack keeper (TE-GW-CONNTRACK) stays by design, as in IPv4.
    expect(await inGw("ip6tables-save")).not.toMatch(/TEG-/);
    expect(await inGw("nft", "list", "table", "ip6", "tenant-egress-gateway")).not.toMatch(/\bchain\b/);
    expect(await inGw("ip", "-6", "-o", "addr", "show")).not.toMatch(/\btev/);
    // The gateway's own uplink address stays: reset removes only what it made.
    expect(await inGw("ip", "-6", "-o", "addr", "show", "dev", "eth0")).toContain(gw.ip6);
    await rebuildAcme();
  });

  it("an open IPv6 flow survives reset + apply: not reset, and it resumes within 2 s of the apply", async () => {
    const port = 5204;
    const flow = openFlow(port, 8);
    await resumes(port, 5000); // under way
    const config = parseGatewayConfig(gatewayConfig);
    const started = Date.now();
    await reset({ netns: `/run/netns/${gw.ns}` });
    // Nothing of the tunnel is left to remember the pod by: only conntrack.
    expect(await gatewayIPv6(100, await tunnelIP6())).toEqual([]);
    await applyConfig(config, { netns: `/run/netns/${gw.ns}` });
    const gap = Date.now() - started;
    // Before the pod has sent anything: its IPv6 entry is back, with its MAC, from conntrack's mark.
    const podMac = JSON.parse((await run(["ip", "-n", pod, "-json", "link", "show", "te-eth0"])).stdout)[0].address;
    expect((await gatewayIPv6(100, await tunnelIP6())).map((l) => l.trim())).toContain(
      `neigh ${await tunnelIP6()} dev tev100 lladdr ${podMac} PERMANENT`,
    );
    const after = await resumes(port, 2000);
    process.stdout.write(
      `IPv6 flow across reset + apply: tunnel gone for ${gap} ms, resumed ${after} ms after the apply\n`,
    );
    expect(await flow, "the open IPv6 flow was reset by the rebuild").toBeUndefined();
  });

  it("an open IPv6 flow survives the gateway daemon killed (SIGKILL) and restarted", async () => {
    const file = join(lab.dir, `${gw.ns}-gateway.json`);
    let daemon = startGatewayDaemon(gw.ns, ["-f", file]);
    try {
      await daemon.waitFor(/ start: /);
      const port = 5203;
      const flow = openFlow(port, 6);
      await resumes(port, 5000);
      daemon.signal("SIGKILL");
      await daemon.exited;
      daemon = startGatewayDaemon(gw.ns, ["-f", file]);
      expect(await daemon.waitFor(/ start: /)).toMatch(/start: nothing to change/);
      await resumes(port, 2000);
      expect(await flow, "the open IPv6 flow was reset by a daemon restart").toBeUndefined();
    } finally {
      await daemon.stop();
    }
  });

  it("DEL removes every IPv6 piece and leaves the main plugin's IPv6 alone; a second DEL succeeds, and the chain's", async () => {
    const call = { node: lab.ns.nodeA, network: net, pod, cniArgs: "IgnoreUnknown=1;EGRESS_TENANT=acme" };
    const inPod = async (...args: string[]) => (await run(["ip", "netns", "exec", pod, ...args])).stdout;
    expect(await inPod("ip6tables-save")).toMatch(/TE-MARK-eth0/);
    // Our plugin's DEL alone first: the main plugin's pieces must then still be there.
    expect(await ourPlugin("DEL")).toMatchObject({ exitCode: 0, stdout: "" });
    const rules6 = JSON.parse(await inPod("ip", "-6", "-json", "rule", "show")) as Array<{ table?: string }>;
    expect(rules6.map((r) => r.table)).not.toContain("200");
    const routes6 = JSON.parse(await inPod("ip", "-6", "-json", "route", "show", "table", "all")) as Array<{
      table?: string;
    }>;
    expect(routes6.filter((r) => r.table === "200")).toEqual([]);
    expect(await inPod("ip6tables-save")).not.toMatch(/TE-/);
    expect(await inPod("ip", "-6", "-o", "addr", "show")).not.toMatch(/te-eth0/);
    // The main plugin's IPv6 address and default route are as it left them.
    const podIP6 = result.ips.find((ip) => ip.address.includes(":"))!.address.split("/")[0]!;
    expect(await inPod("ip", "-6", "-o", "addr", "show", "dev", "eth0")).toContain(podIP6);
    expect(await inPod("ip", "-6", "route", "show", "default")).toMatch(/dev eth0/);
    expect(await ourPlugin("DEL")).toMatchObject({ exitCode: 0, stdout: "" });
    await cni("del", call);
  });
});
