/**
 * Hostile input to tenant-egress-gateway: every case must exit non-zero with a message naming
 * what to fix (the field, the interface, the command), and leave the gateway's namespace exactly
 * as it was.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayCli } from "../../src/lab/gateway-cli.js";
import { netnsSnapshot, waitSettled } from "../../src/lab/snapshot.js";
import { deleteNamespaces, ipIn, uniquePrefix } from "../../src/lab/topology.js";
import { run } from "../../src/net/run.js";

const prefix = uniquePrefix("q");
const gw = `${prefix}-gw`;
let dir: string;
let baseline: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), `${prefix}-`));
  for (const ns of [gw, `${prefix}-peer`]) {
    await run(["ip", "netns", "add", ns]);
    await run(["ip", "-n", ns, "link", "set", "lo", "up"]);
  }
  await ipIn(gw, [
    `link add eth0 type veth peer name peer0 netns ${prefix}-peer`,
    "addr add 10.23.0.2/24 dev eth0",
    "link set eth0 up",
    "route add default via 10.23.0.1",
  ]);
  await ipIn(`${prefix}-peer`, ["link set peer0 up"]);
  await waitSettled(gw);
  baseline = await netnsSnapshot(gw);
});

afterAll(async () => {
  await deleteNamespaces(`${prefix}-`);
  await rm(dir, { recursive: true, force: true });
});

const tenant = (over: Record<string, unknown> = {}) => ({
  name: "acme",
  vni: 100,
  overlaySubnet: "172.16.0.0/24",
  allowedSources: ["10.22.0.0/16"],
  upload: { rate: "10mbit" },
  download: { rate: "10mbit" },
  ...over,
});
const other = (over: Record<string, unknown> = {}) =>
  tenant({ name: "globex", vni: 200, overlaySubnet: "172.17.0.0/24", ...over });

interface Case {
  name: string;
  args?: string[];
  /** Written to a file and passed as -f. A string is written as is. */
  config?: unknown;
  exit: number;
  message: RegExp;
}

const cases: Case[] = [
  { name: "no command", args: [], exit: 2, message: /Usage: tenant-egress-gateway <command>/ },
  { name: "unknown command", args: ["frobnicate"], exit: 2, message: /unknown command "frobnicate"/ },
  {
    name: "unknown option",
    args: ["apply", "--force-everything"],
    exit: 2,
    message: /Unknown option '--force-everything'/,
  },
  { name: "apply without a file", args: ["apply"], exit: 2, message: /apply needs -f FILE/ },
  {
    name: "a file that does not exist",
    args: ["apply", "-f", "/nonexistent/gw.json"],
    exit: 2,
    message: /cannot read \/nonexistent\/gw.json/,
  },
  { name: "malformed JSON", config: '{"tenants": [', exit: 2, message: /cannot read .* as JSON/ },
  { name: "a JSON list", config: [], exit: 2, message: /invalid configuration/ },
  { name: "unknown key", config: { tenants: [], colour: "blue" }, exit: 2, message: /unknown key "colour"/ },
  {
    name: "rate without a unit",
    config: { tenants: [tenant({ upload: { rate: "10" } })] },
    exit: 2,
    message: /tenants\[0\]\.upload\.rate: "10" is not a rate with a tc unit/,
  },
  {
    name: "rate with a made-up unit",
    config: { tenants: [tenant({ download: { rate: "10mbits" } })] },
    exit: 2,
    message: /tenants\[0\]\.download\.rate/,
  },
  {
    name: "zero rate",
    config: { tenants: [tenant({ upload: { rate: "0mbit" } })] },
    exit: 2,
    message: /tenants\[0\]\.upload\.rate/,
  },
  {
    name: "rate with shell metacharacters",
    config: { tenants: [tenant({ upload: { rate: "10mbit; reboot" } })] },
    exit: 2,
    message: /tenants\[0\]\.upload\.rate/,
  },
  {
    name: "ceil below rate",
    config: { tenants: [tenant({ upload: { rate: "10mbit", ceil: "5mbit" } })] },
    exit: 2,
    message: /tenants\[0\]\.upload\.ceil: 5mbit is below rate 10mbit/,
  },
  {
    name: "ceil above the link",
    config: { linkRate: "20mbit", tenants: [tenant({ download: { rate: "10mbit", ceil: "30mbit" } })] },
    exit: 2,
    message: /tenants\[0\]\.download\.ceil: 30mbit is above linkRate 20mbit/,
  },
  {
    name: "uploads overcommitted",
    config: { linkRate: "15mbit", tenants: [tenant(), other()] },
    exit: 2,
    message: /linkRate: the guaranteed upload rates add up to 20mbit, more than linkRate 15mbit/,
  },
  {
    name: "downloads overcommitted",
    config: { linkRate: "25mbit", tenants: [tenant({ download: { rate: "20mbit" } }), other()] },
    exit: 2,
    message: /guaranteed download rates add up to 30mbit/,
  },
  {
    name: "duplicate VNI",
    config: { tenants: [tenant(), other({ vni: 100 })] },
    exit: 2,
    message: /tenants\[1\]\.vni: 100 is also used by tenants\[0\]/,
  },
  {
    name: "duplicate name",
    config: { tenants: [tenant(), other({ name: "acme" })] },
    exit: 2,
    message: /tenants\[1\]\.name: acme is also used by tenants\[0\]/,
  },
  {
    name: "overlapping overlays",
    config: { tenants: [tenant(), other({ overlaySubnet: "172.16.0.0/16" })] },
    exit: 2,
    message: /overlaps tenants\[0\]\.overlaySubnet/,
  },
  {
    name: "an overlay too large",
    config: { tenants: [tenant({ overlaySubnet: "172.16.0.0/12" })] },
    exit: 2,
    message: /tenants\[0\]\.overlaySubnet: .* must be \/16 to \/30/,
  },
  { name: "VNI 0", config: { tenants: [tenant({ vni: 0 })] }, exit: 2, message: /tenants\[0\]\.vni/ },
  { name: "VNI 2^24", config: { tenants: [tenant({ vni: 16777216 })] }, exit: 2, message: /tenants\[0\]\.vni/ },
  {
    name: "port 65536",
    config: { tenants: [tenant({ vxlanPort: 65536 })] },
    exit: 2,
    message: /tenants\[0\]\.vxlanPort/,
  },
  {
    name: "no allowed sources",
    config: { tenants: [tenant({ allowedSources: [] })] },
    exit: 2,
    message: /tenants\[0\]\.allowedSources/,
  },
  {
    name: "IPv6 allowed source",
    config: { tenants: [tenant({ allowedSources: ["fd00::/8"] })] },
    exit: 2,
    message: /tenants\[0\]\.allowedSources\[0\]/,
  },
  // IPv6 fields: bad prefixes, the wrong family either way, overlaps and the gateway's own address.
  {
    name: "IPv6 overlay with host bits",
    config: { tenants: [tenant({ overlaySubnet6: "fd00::1/64" })] },
    exit: 2,
    message: /tenants\[0\]\.overlaySubnet6: "fd00::1\/64" has host bits set/,
  },
  {
    name: "IPv6 overlay /129",
    config: { tenants: [tenant({ overlaySubnet6: "fd00::/129" })] },
    exit: 2,
    message: /tenants\[0\]\.overlaySubnet6/,
  },
  {
    name: "IPv4 overlay where IPv6 is needed",
    config: { tenants: [tenant({ overlaySubnet6: "172.18.0.0/24" })] },
    exit: 2,
    message: /tenants\[0\]\.overlaySubnet6: .*IPv4 CIDR; an IPv6 CIDR is needed/,
  },
  {
    name: "IPv6 overlay where IPv4 is needed",
    config: { tenants: [tenant({ overlaySubnet: "fd00::/64" })] },
    exit: 2,
    message: /tenants\[0\]\.overlaySubnet: .*IPv6 CIDR; an IPv4 CIDR is needed/,
  },
  {
    name: "IPv6 overlay without room",
    config: { tenants: [tenant({ overlaySubnet6: "fd00::/127" })] },
    exit: 2,
    message: /tenants\[0\]\.overlaySubnet6: fd00::\/127 has no room for pods/,
  },
  {
    name: "overlapping IPv6 overlays",
    config: { tenants: [tenant({ overlaySubnet6: "fd00:1::/64" }), other({ overlaySubnet6: "fd00::/16" })] },
    exit: 2,
    message: /tenants\[1\]\.overlaySubnet6: fd00::\/16 overlaps tenants\[0\]\.overlaySubnet6/,
  },
  {
    name: "gateway overlay IPv6 outside its prefix",
    config: { tenants: [tenant({ gatewayOverlayIP6: "fd00:65::1" })] },
    exit: 2,
    message: /tenants\[0\]\.gatewayOverlayIP6: fd00:65::1 is not a host address inside fd00:64:7e7e::\/48/,
  },
  {
    name: "gateway overlay IPv6 that is IPv4",
    config: { tenants: [tenant({ gatewayOverlayIP6: "172.16.0.1" })] },
    exit: 2,
    message: /tenants\[0\]\.gatewayOverlayIP6: .*IPv4 address; an IPv6 address is needed/,
  },
  {
    name: "gateway overlay IPv6 with metacharacters",
    config: { tenants: [tenant({ gatewayOverlayIP6: "fd00::1; reboot" })] },
    exit: 2,
    message: /tenants\[0\]\.gatewayOverlayIP6: "fd00::1; reboot" is not an IPv6 address/,
  },
  {
    name: "IPv6 SNAT that is IPv4",
    config: { tenants: [tenant({ snat6: "198.51.100.7" })] },
    exit: 2,
    message: /tenants\[0\]\.snat6/,
  },
  {
    name: "IPv4 SNAT that is IPv6",
    config: { tenants: [tenant({ snat: "2001:db8::7" })] },
    exit: 2,
    message: /tenants\[0\]\.snat/,
  },
  {
    name: "SNAT to a CIDR",
    config: { tenants: [tenant({ snat: "0.0.0.0/0" })] },
    exit: 2,
    message: /tenants\[0\]\.snat/,
  },
  {
    name: "gateway overlay IP outside its subnet",
    config: { tenants: [tenant({ gatewayOverlayIP: "172.18.0.1" })] },
    exit: 2,
    message: /tenants\[0\]\.gatewayOverlayIP: 172.18.0.1 is not a host address/,
  },
  {
    name: "burst smaller than a frame",
    config: { tenants: [tenant({ upload: { rate: "1mbit", burst: "100b" } })] },
    exit: 2,
    message: /tenants\[0\]\.upload\.burst/,
  },
  {
    name: "tenant name with metacharacters",
    config: { tenants: [tenant({ name: "acme$(id)" })] },
    exit: 2,
    message: /tenants\[0\]\.name/,
  },
  {
    name: "uplink name with metacharacters",
    config: { uplink: "eth0;reboot", tenants: [tenant()] },
    exit: 2,
    message: /uplink: not an interface name/,
  },
  {
    name: "uplink that does not exist",
    config: { uplink: "eth9", tenants: [tenant()] },
    exit: 1,
    message: /uplink eth9 does not exist in this namespace/,
  },
  {
    name: "deleting an unknown tenant",
    args: ["delete", "--tenant", "nobody"],
    exit: 1,
    message: /tenant nobody is not configured here \(no tenants\)/,
  },
  { name: "delete without a tenant", args: ["delete"], exit: 2, message: /delete needs --tenant NAME/ },
  {
    name: "status with a zero interval",
    args: ["status", "--interval", "0"],
    exit: 2,
    message: /--interval takes seconds/,
  },
  {
    name: "run with a listen address that is no ADDR:PORT",
    args: ["run", "-f", "/nonexistent", "--listen", "9464; rm -rf /"],
    exit: 2,
    message: /--listen takes ADDR:PORT/,
  },
  { name: "run without a file", args: ["run"], exit: 2, message: /run needs -f FILE/ },
  {
    name: "run with a resync of no unit it knows",
    args: ["run", "-f", "/nonexistent", "--resync", "5h"],
    exit: 2,
    message: /--resync takes a duration like 30s, 500ms or 2m, not "5h"/,
  },
  {
    name: "run with an unknown log format",
    args: ["run", "-f", "/nonexistent", "--log-format", "xml"],
    exit: 2,
    message: /--log-format is text or json, not "xml"/,
  },
  {
    name: "run with a listen address without a port",
    args: ["run", "-f", "/nonexistent", "--listen", "0.0.0.0"],
    exit: 2,
    message: /--listen takes ADDR:PORT/,
  },
];

describe("hostile input to tenant-egress-gateway", () => {
  it.each(cases)("$name → exit $exit, nothing changed", async (c) => {
    let args = c.args ?? [];
    if (c.config !== undefined) {
      const file = join(dir, "gw.json");
      await writeFile(file, typeof c.config === "string" ? c.config : JSON.stringify(c.config));
      args = ["apply", "-f", file];
    }
    const r = await gatewayCli(gw, args);
    expect({ exit: r.exitCode, output: r.stderr + r.stdout }).toEqual({
      exit: c.exit,
      output: expect.stringMatching(c.message),
    });
    expect(await netnsSnapshot(gw)).toBe(baseline);
  });

  it("refuses an uplink whose HTB root belongs to someone else, and leaves it alone", async () => {
    await run([
      "ip",
      "netns",
      "exec",
      gw,
      "tc",
      "qdisc",
      "add",
      "dev",
      "eth0",
      "root",
      "handle",
      "1:",
      "htb",
      "default",
      "10",
    ]);
    const before = await netnsSnapshot(gw);
    const file = join(dir, "gw.json");
    await writeFile(file, JSON.stringify({ tenants: [tenant()] }));
    const r = await gatewayCli(gw, ["apply", "-f", file]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/uplink eth0 already has an HTB root \(handle 1:\) that tenant-egress does not own/);
    expect(await netnsSnapshot(gw)).toBe(before);
    await run(["ip", "netns", "exec", gw, "tc", "qdisc", "del", "dev", "eth0", "root"]);
  });
});
