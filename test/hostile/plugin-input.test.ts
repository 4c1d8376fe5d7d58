/**
 * Hostile input to the built plugin, table-driven. Every case runs dist/tenant-egress from a
 * node namespace against a pod namespace, and asserts the exit code, the CNI error code, a
 * message naming the offending field — and, by snapshotting both namespaces (links, addresses,
 * rules, all route tables, iptables, qdiscs, sysctls) before and after, that nothing changed.
 * Strings that reach command lines or batch files carry shell metacharacters and newlines.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { invokePlugin } from "../../src/lab/plugin-runner.js";
import { netnsSnapshot, waitSettled } from "../../src/lab/snapshot.js";
import { deleteNamespaces, ipIn, uniquePrefix } from "../../src/lab/topology.js";
import { run } from "../../src/net/run.js";

const prefix = uniquePrefix("h");
const node = `${prefix}-node`;
const pod = `${prefix}-pod`;
const POD_IP = "10.22.0.5";
let regularFile: string;
/** What a netns path looks like once its namespace was unmounted: an empty file left behind. */
let unmountedPath: string;
let baseline: { pod: string; node: string };

const prevResult = {
  cniVersion: "1.0.0",
  interfaces: [{ name: "eth0", sandbox: `/run/netns/${pod}` }],
  ips: [{ address: `${POD_IP}/24`, gateway: "10.22.0.1", interface: 0 }],
};
/** prevResult of a dual-stack pod: its IPv4 and `ipv6` on eth0. */
const dualStack = (ipv6: string) => ({
  ...prevResult,
  ips: [...prevResult.ips, { address: `${ipv6}/64`, gateway: "fd00:10:22::1", interface: 0 }],
});
const conf = (over: Record<string, unknown> = {}) => ({
  cniVersion: "1.0.0",
  name: "hostile",
  type: "tenant-egress",
  gateway: "10.23.0.2",
  prevResult,
  ...over,
});
const env = (over: Record<string, string | undefined> = {}): Record<string, string | undefined> => ({
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "hostile0",
  CNI_NETNS: `/run/netns/${pod}`,
  ...over,
});

const invoke = (e: Record<string, string | undefined>, stdin: string) => invokePlugin(node, e, stdin);

beforeAll(async () => {
  for (const ns of [node, pod]) {
    await run(["ip", "netns", "add", ns]);
    await run(["ip", "-n", ns, "link", "set", "lo", "up"]);
  }
  await ipIn(node, [
    `link add veth-h type veth peer name eth0 netns ${pod}`,
    "addr add 10.22.0.1/24 dev veth-h",
    "link set veth-h up",
  ]);
  await ipIn(pod, [`addr add ${POD_IP}/24 dev eth0`, "link set eth0 up", "route add default via 10.22.0.1"]);
  regularFile = join("/tmp", `${prefix}-not-a-netns`);
  await writeFile(regularFile, "not a namespace");
  unmountedPath = join("/tmp", `${prefix}-unmounted`);
  await writeFile(unmountedPath, "");
  await Promise.all([waitSettled(pod), waitSettled(node)]);
  baseline = { pod: await netnsSnapshot(pod), node: await netnsSnapshot(node) };
});

afterAll(async () => {
  await deleteNamespaces(`${prefix}-`);
  await run(["rm", "-f", regularFile, unmountedPath]);
});

interface Case {
  name: string;
  env?: Record<string, string | undefined>;
  /** The stdin document (an object is JSON-encoded), or raw text. */
  stdin?: unknown;
  code: number;
  msg: RegExp;
}

const huge = "x".repeat(3_000_000);
const meta = ["; reboot", "$(touch /tmp/pwned)", "`id`", "\nlink del eth0", "' \" \\", "\u0000"];

const cases: Case[] = [
  // Malformed stdin.
  { name: "empty stdin", stdin: "", code: 6, msg: /not a JSON object/ },
  { name: "not JSON", stdin: "hello", code: 6, msg: /not a JSON object/ },
  { name: "truncated JSON", stdin: '{"cniVersion":"1.0.0","type":"tenant-', code: 6, msg: /not a JSON object/ },
  { name: "a JSON array", stdin: "[1,2]", code: 6, msg: /not a JSON object/ },
  { name: "JSON null", stdin: "null", code: 6, msg: /not a JSON object/ },
  { name: "huge document with a bad name", stdin: conf({ name: `${huge};` }), code: 7, msg: /field name/ },
  {
    name: "huge exclusion list",
    stdin: conf({ excludeCIDRs: Array.from({ length: 50_000 }, () => "10.0.0.0/8").concat(["bad"]) }),
    code: 7,
    msg: /excludeCIDRs/,
  },
  // Wrong types.
  { name: "vni as a string", stdin: conf({ vni: "100" }), code: 7, msg: /field vni/ },
  { name: "gateway as a number", stdin: conf({ gateway: 12345 }), code: 7, msg: /field gateway/ },
  { name: "excludeCIDRs not a list", stdin: conf({ excludeCIDRs: "10.0.0.0/8" }), code: 7, msg: /field excludeCIDRs/ },
  { name: "tenants as a list", stdin: conf({ tenants: [] }), code: 7, msg: /field tenants/ },
  { name: "fractional mtu", stdin: conf({ mtu: 1400.5 }), code: 7, msg: /field mtu/ },
  { name: "cniVersion as a number", stdin: conf({ cniVersion: 1 }), code: 1, msg: /cniVersion/ },
  { name: "namespaces map to a number", stdin: conf({ namespaces: { a: 1 } }), code: 7, msg: /field namespaces/ },
  // Out of range.
  { name: "vni 0", stdin: conf({ vni: 0 }), code: 7, msg: /field vni/ },
  { name: "vni 2^24", stdin: conf({ vni: 16777216 }), code: 7, msg: /field vni/ },
  { name: "negative vni", stdin: conf({ vni: -1 }), code: 7, msg: /field vni/ },
  { name: "port 0", stdin: conf({ vxlanPort: 0 }), code: 7, msg: /field vxlanPort/ },
  { name: "port 65536", stdin: conf({ vxlanPort: 65536 }), code: 7, msg: /field vxlanPort/ },
  { name: "mark without mask", stdin: conf({ mark: "0xa" }), code: 7, msg: /field mark/ },
  { name: "mark outside its mask", stdin: conf({ mark: "0x100/0xff" }), code: 7, msg: /field mark/ },
  { name: "table 0", stdin: conf({ routeTable: 0 }), code: 7, msg: /field routeTable/ },
  { name: "table 253", stdin: conf({ routeTable: 253 }), code: 7, msg: /field routeTable/ },
  { name: "table 254", stdin: conf({ routeTable: 254 }), code: 7, msg: /field routeTable/ },
  { name: "table 255", stdin: conf({ routeTable: 255 }), code: 7, msg: /field routeTable/ },
  { name: "table 2^32", stdin: conf({ routeTable: 4294967296 }), code: 7, msg: /field routeTable/ },
  { name: "mtu 575", stdin: conf({ mtu: 575 }), code: 7, msg: /field mtu/ },
  { name: "mss 535", stdin: conf({ mss: 535 }), code: 7, msg: /field mss/ },
  { name: "rule priority after main", stdin: conf({ rulePriority: 32766 }), code: 7, msg: /field rulePriority/ },
  { name: "rule priority 0", stdin: conf({ rulePriority: 0 }), code: 7, msg: /field rulePriority/ },
  // Wrong family or form.
  { name: "IPv6 gateway", stdin: conf({ gateway: "2001:db8::1" }), code: 7, msg: /field gateway: .*IPv6/ },
  { name: "CIDR as gateway", stdin: conf({ gateway: "10.23.0.0/24" }), code: 7, msg: /field gateway: .*CIDR/ },
  { name: "IPv6 overlay", stdin: conf({ overlaySubnet: "fd00::/64" }), code: 7, msg: /field overlaySubnet/ },
  { name: "overlay without prefix", stdin: conf({ overlaySubnet: "172.16.0.0" }), code: 7, msg: /field overlaySubnet/ },
  {
    name: "CIDR as gateway overlay IP",
    stdin: conf({ gatewayOverlayIP: "172.16.0.1/16" }),
    code: 7,
    msg: /field gatewayOverlayIP/,
  },
  // IPv6 fields: bad prefixes, the wrong family either way, collisions with the gateway's address.
  {
    name: "IPv6 exclusion with host bits",
    stdin: conf({ excludeCIDRs: ["2001:db8::1/32"] }),
    code: 7,
    msg: /field excludeCIDRs.0: "2001:db8::1\/32" has host bits set/,
  },
  { name: "IPv6 prefix /129", stdin: conf({ overlaySubnet6: "fd00::/129" }), code: 7, msg: /field overlaySubnet6/ },
  {
    name: "IPv6 prefix with a zone id",
    stdin: conf({ overlaySubnet6: "fe80::%eth0/64" }),
    code: 7,
    msg: /field overlaySubnet6: "fe80::%eth0\/64" is not an IPv6 CIDR/,
  },
  {
    name: "IPv4-mapped IPv6 overlay",
    stdin: conf({ overlaySubnet6: "::ffff:172.16.0.0/112" }),
    code: 7,
    msg: /field overlaySubnet6/,
  },
  {
    name: "IPv6 overlay without room",
    stdin: conf({ overlaySubnet6: "fd00::/127" }),
    code: 7,
    msg: /no room for pods/,
  },
  {
    name: "IPv4 overlay where IPv6 is needed",
    stdin: conf({ overlaySubnet6: "172.16.0.0/16" }),
    code: 7,
    msg: /field overlaySubnet6: .*IPv4 CIDR; an IPv6 CIDR is needed/,
  },
  {
    name: "IPv4 gateway overlay IP where IPv6 is needed",
    stdin: conf({ gatewayOverlayIP6: "172.16.0.1" }),
    code: 7,
    msg: /field gatewayOverlayIP6: .*IPv4 address; an IPv6 address is needed/,
  },
  {
    name: "IPv6 gateway overlay IP where IPv4 is needed",
    stdin: conf({ gatewayOverlayIP: "fd00:64:7e7e::1" }),
    code: 7,
    msg: /field gatewayOverlayIP: .*IPv6 address; an IPv4 address is needed/,
  },
  {
    name: "IPv6 gateway overlay IP outside its prefix",
    stdin: conf({ gatewayOverlayIP6: "fd00:65::1" }),
    code: 7,
    msg: /gatewayOverlayIP6: fd00:65::1 is not a host address inside overlaySubnet6/,
  },
  {
    name: "IPv6 gateway overlay IP with a newline",
    stdin: conf({ gatewayOverlayIP6: "fd00:64:7e7e::1\nlink del eth0" }),
    code: 7,
    msg: /field gatewayOverlayIP6: "fd00:64:7e7e::1\\nlink del eth0" is not an IPv6 address/,
  },
  {
    name: "tenant's IPv6 overlay of the wrong family",
    stdin: conf({ tenants: { t: { gateway: "10.23.0.2", overlaySubnet6: "10.0.0.0/8" } } }),
    code: 7,
    msg: /field tenants.t.overlaySubnet6/,
  },
  {
    name: "derived overlay IPv6 is the gateway's",
    stdin: conf({ prevResult: dualStack("fd00:10:22::1") }),
    code: 7,
    msg: /overlay IPv6 address derived from pod IP fd00:10:22::1 .* is the gateway's overlay address/,
  },
  {
    name: "derived overlay IPv6 is the prefix's network address",
    stdin: conf({ prevResult: dualStack("fd00:10:22::") }),
    code: 7,
    msg: /fd00:64:7e7e:: is the network \(subnet-router anycast\) address/,
  },
  { name: "loopback gateway", stdin: conf({ gateway: "127.0.0.1" }), code: 7, msg: /field gateway: .*loopback/ },
  { name: "unspecified gateway", stdin: conf({ gateway: "0.0.0.0" }), code: 7, msg: /field gateway: .*unspecified/ },
  { name: "multicast gateway", stdin: conf({ gateway: "224.0.0.1" }), code: 7, msg: /field gateway: .*multicast/ },
  {
    name: "gateway is the pod's own address",
    stdin: conf({ gateway: POD_IP }),
    code: 7,
    msg: /gateway 10.22.0.5 .* is the pod's own address/,
  },
  {
    name: "derived overlay address is the gateway's",
    stdin: conf({ overlaySubnet: "172.16.0.0/24", gatewayOverlayIP: "172.16.0.5" }),
    code: 7,
    msg: /derived .* gateway's overlay address/,
  },
  // Unknown keys.
  {
    name: "unknown key",
    stdin: conf({ egressGateway: "1.2.3.4" }),
    code: 7,
    msg: /unknown configuration key "egressGateway"/,
  },
  {
    name: "unknown tenant key",
    stdin: conf({ tenants: { a: { gateway: "10.23.0.2", rate: "1mbit" } } }),
    code: 7,
    msg: /unknown configuration key "rate" in tenants.a/,
  },
  { name: "wrong plugin type", stdin: conf({ type: "bandwidth" }), code: 7, msg: /field type/ },
  // Versions.
  { name: "missing cniVersion", stdin: { ...conf(), cniVersion: undefined }, code: 1, msg: /cniVersion is missing/ },
  {
    name: "cniVersion 0.2.0",
    stdin: conf({ cniVersion: "0.2.0" }),
    code: 1,
    msg: /cniVersion "0.2.0" is not supported/,
  },
  {
    name: "cniVersion 1.2.0",
    stdin: conf({ cniVersion: "1.2.0" }),
    code: 1,
    msg: /cniVersion "1.2.0" is not supported/,
  },
  {
    name: "CHECK under 0.3.1",
    env: { CNI_COMMAND: "CHECK" },
    stdin: conf({ cniVersion: "0.3.1" }),
    code: 1,
    msg: /does not define CHECK/,
  },
  { name: "GC under 1.0.0", env: { CNI_COMMAND: "GC" }, stdin: conf(), code: 1, msg: /does not define GC/ },
  // prevResult.
  { name: "missing prevResult", stdin: { ...conf(), prevResult: undefined }, code: 6, msg: /prevResult is missing/ },
  { name: "prevResult a string", stdin: conf({ prevResult: "x" }), code: 6, msg: /prevResult is malformed/ },
  {
    name: "prevResult without IPs",
    stdin: conf({ prevResult: { cniVersion: "1.0.0", interfaces: [] } }),
    code: 6,
    msg: /no IPv4 address on interface eth0/,
  },
  {
    name: "prevResult IP on another interface",
    stdin: conf({ prevResult: { ...prevResult, interfaces: [{ name: "net1", sandbox: "/x" }] } }),
    code: 6,
    msg: /no IPv4 address on interface eth0/,
  },
  {
    name: "prevResult IPv6 only",
    stdin: conf({ prevResult: { ...prevResult, ips: [{ address: "fd00::5/64", interface: 0 }] } }),
    code: 6,
    msg: /only IPv6 on interface eth0 .*fd00::5.*VXLAN over the pod's IPv4/,
  },
  {
    name: "prevResult IP not on the interface",
    stdin: conf({ prevResult: { ...prevResult, ips: [{ address: "10.22.0.99/24", interface: 0 }] } }),
    code: 4,
    msg: /eth0 does not hold 10.22.0.99/,
  },
  {
    name: "prevResult address with a newline",
    stdin: conf({ prevResult: { ...prevResult, ips: [{ address: "10.22.0.5\nlink del eth0/24", interface: 0 }] } }),
    code: 6,
    msg: /no IPv4 address/,
  },
  // Environment.
  { name: "unknown command", env: { CNI_COMMAND: "FOO" }, stdin: conf(), code: 4, msg: /CNI_COMMAND/ },
  { name: "missing container ID", env: { CNI_CONTAINERID: undefined }, stdin: conf(), code: 4, msg: /CNI_CONTAINERID/ },
  {
    name: "container ID with a space",
    env: { CNI_CONTAINERID: "a b" },
    stdin: conf(),
    code: 4,
    msg: /CNI_CONTAINERID/,
  },
  {
    name: "container ID with $(…)",
    env: { CNI_CONTAINERID: "$(reboot)" },
    stdin: conf(),
    code: 4,
    msg: /CNI_CONTAINERID/,
  },
  {
    name: "interface name of 16 characters",
    env: { CNI_IFNAME: "abcdefghijklmnop" },
    stdin: conf(),
    code: 4,
    msg: /CNI_IFNAME/,
  },
  { name: "interface name with /", env: { CNI_IFNAME: "eth/0" }, stdin: conf(), code: 4, msg: /CNI_IFNAME/ },
  { name: "interface name with ;", env: { CNI_IFNAME: "eth0;ls" }, stdin: conf(), code: 4, msg: /CNI_IFNAME/ },
  {
    name: "interface name with a newline",
    env: { CNI_IFNAME: "eth0\nlink" },
    stdin: conf(),
    code: 4,
    msg: /CNI_IFNAME/,
  },
  { name: "empty interface name", env: { CNI_IFNAME: "" }, stdin: conf(), code: 4, msg: /CNI_IFNAME/ },
  { name: "missing netns on ADD", env: { CNI_NETNS: undefined }, stdin: conf(), code: 4, msg: /CNI_NETNS is required/ },
  {
    name: "netns that does not exist",
    env: { CNI_NETNS: "/run/netns/does-not-exist" },
    stdin: conf(),
    code: 4,
    msg: /CNI_NETNS .* does not exist/,
  },
  {
    name: "netns that is a regular file",
    env: { CNI_NETNS: "REGULAR" },
    stdin: conf(),
    code: 4,
    msg: /is not a network namespace/,
  },
  {
    name: "netns path of an unmounted namespace",
    env: { CNI_NETNS: "UNMOUNTED" },
    stdin: conf(),
    code: 4,
    msg: /CNI_NETNS .* does not exist/,
  },
  {
    name: "netns that is the host's",
    env: { CNI_NETNS: `/run/netns/${node}` },
    stdin: conf(),
    code: 4,
    msg: /own \(host\) network namespace/,
  },
  {
    name: "relative netns path",
    env: { CNI_NETNS: "run/netns/x" },
    stdin: conf(),
    code: 4,
    msg: /CNI_NETNS .* absolute path/,
  },
  {
    name: "malformed CNI_ARGS",
    env: { CNI_ARGS: "IgnoreUnknown=1;junk" },
    stdin: conf(),
    code: 4,
    msg: /CNI_ARGS: "junk"/,
  },
  { name: "unknown CNI_ARGS key", env: { CNI_ARGS: "FOO=bar" }, stdin: conf(), code: 4, msg: /CNI_ARGS key "FOO"/ },
  {
    name: "EGRESS_GATEWAY with $(…)",
    env: { CNI_ARGS: "EGRESS_GATEWAY=$(id)" },
    stdin: conf(),
    code: 4,
    msg: /EGRESS_GATEWAY.*not an IPv4 address/,
  },
  {
    name: "EGRESS_GATEWAY loopback",
    env: { CNI_ARGS: "EGRESS_GATEWAY=127.0.0.2" },
    stdin: conf(),
    code: 4,
    msg: /EGRESS_GATEWAY.*loopback/,
  },
  {
    name: "unknown EGRESS_TENANT",
    env: { CNI_ARGS: "EGRESS_TENANT=nobody" },
    stdin: conf(),
    code: 4,
    msg: /tenant "nobody" is not defined/,
  },
  {
    name: "pinned overlay outside the subnet",
    env: { CNI_ARGS: "EGRESS_OVERLAY_IP=192.168.9.9" },
    stdin: conf(),
    code: 4,
    msg: /EGRESS_OVERLAY_IP: 192.168.9.9 is outside the overlay subnet/,
  },
  {
    name: "pinned overlay IPv6 = gateway overlay IPv6",
    env: { CNI_ARGS: "EGRESS_OVERLAY_IP6=fd00:64:7e7e:0::1" },
    stdin: conf({ prevResult: dualStack("fd00:10:22::5") }),
    code: 4,
    msg: /EGRESS_OVERLAY_IP6: fd00:64:7e7e::1 is the gateway's overlay address/,
  },
  {
    name: "pinned overlay IPv6 outside its prefix",
    env: { CNI_ARGS: "EGRESS_OVERLAY_IP6=fd00:65::5" },
    stdin: conf({ prevResult: dualStack("fd00:10:22::5") }),
    code: 4,
    msg: /EGRESS_OVERLAY_IP6: fd00:65::5 is outside the overlay subnet fd00:64:7e7e::\/48/,
  },
  {
    name: "pinned overlay IPv6 that is IPv4",
    env: { CNI_ARGS: "EGRESS_OVERLAY_IP6=172.16.9.9" },
    stdin: conf(),
    code: 4,
    msg: /EGRESS_OVERLAY_IP6: "172.16.9.9" is an IPv4 address; an IPv6 address is needed/,
  },
  {
    name: "pinned overlay IPv4 that is IPv6",
    env: { CNI_ARGS: "EGRESS_OVERLAY_IP=fd00:64:7e7e::9" },
    stdin: conf(),
    code: 4,
    msg: /EGRESS_OVERLAY_IP: "fd00:64:7e7e::9" is an IPv6 address; an IPv4 address is needed/,
  },
  {
    name: "pinned overlay = gateway overlay",
    env: { CNI_ARGS: "EGRESS_OVERLAY_IP=172.16.0.1" },
    stdin: conf(),
    code: 4,
    msg: /EGRESS_OVERLAY_IP: 172.16.0.1 is the gateway's overlay address/,
  },
  ...meta.map((m, i) => ({
    name: `annotation gateway with metacharacters #${i}`,
    stdin: conf({
      runtimeConfig: { "io.kubernetes.cri.pod-annotations": { "tenant-egress/gateway": `10.23.0.2${m}` } },
    }),
    code: 4,
    msg: /pod annotation .*not an IPv4 address/,
  })),
  ...meta.map((m, i) => ({
    name: `tenant name with metacharacters #${i}`,
    stdin: conf({ tenants: { [`t${m}`]: { gateway: "10.23.0.2" } } }),
    code: 7,
    msg: /field tenants/,
  })),
  { name: "IPAM type with a path", stdin: conf({ ipam: { type: "../../bin/sh" } }), code: 7, msg: /field ipam.type/ },
  {
    name: "IPAM plugin not in CNI_PATH",
    stdin: conf({ ipam: { type: "no-such-ipam" } }),
    code: 7,
    msg: /IPAM plugin "no-such-ipam" was not found in CNI_PATH/,
  },
];

describe("hostile input to tenant-egress", () => {
  it("has at least 60 cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
  });

  it.each(cases)("$name → code $code, nothing changed", async (c) => {
    const e = env(c.env);
    if (e.CNI_NETNS === "REGULAR") e.CNI_NETNS = regularFile;
    if (e.CNI_NETNS === "UNMOUNTED") e.CNI_NETNS = unmountedPath;
    const stdin = typeof c.stdin === "string" ? c.stdin : JSON.stringify(c.stdin);
    const r = await invoke(e, stdin);
    expect(r.exitCode).toBe(1);
    const out = JSON.parse(r.stdout) as { code: number; msg: string; cniVersion: string };
    expect({ code: out.code, msg: out.msg }).toEqual({ code: c.code, msg: expect.stringMatching(c.msg) });
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    expect(await netnsSnapshot(pod)).toBe(baseline.pod);
    expect(await netnsSnapshot(node)).toBe(baseline.node);
  });

  it.each([
    ["DEL with a netns that does not exist", { CNI_COMMAND: "DEL", CNI_NETNS: "/run/netns/does-not-exist" }, conf()],
    ["DEL without prevResult", { CNI_COMMAND: "DEL" }, { ...conf(), prevResult: undefined }],
    ["DEL without a netns", { CNI_COMMAND: "DEL", CNI_NETNS: undefined }, conf()],
    [
      "DEL with a netns path left behind by an unmounted namespace",
      { CNI_COMMAND: "DEL", CNI_NETNS: "UNMOUNTED" },
      conf(),
    ],
  ])("%s succeeds silently and changes nothing", async (_n, e, c) => {
    const environment = env(e);
    if (environment.CNI_NETNS === "UNMOUNTED") environment.CNI_NETNS = unmountedPath;
    const r = await invoke(environment, JSON.stringify(c));
    expect(r).toMatchObject({ exitCode: 0, stdout: "" });
    expect(await netnsSnapshot(pod)).toBe(baseline.pod);
  });

  it.each([
    ["a private gateway", "10.23.0.2"],
    ["a public gateway", "198.51.100.7"],
  ])("ADD with %s, then DEL, restores the namespace exactly", async (_n, gateway) => {
    const add = await invoke(env(), JSON.stringify(conf({ gateway })));
    expect(add.exitCode).toBe(0);
    expect(await netnsSnapshot(pod)).not.toBe(baseline.pod);
    const del = await invoke(env({ CNI_COMMAND: "DEL" }), JSON.stringify(conf({ gateway })));
    expect(del.exitCode).toBe(0);
    expect(await netnsSnapshot(pod)).toBe(baseline.pod);
    expect(await netnsSnapshot(node)).toBe(baseline.node);
  });
});
