import { describe, expect, it } from "vitest";
import { GatewayConfigError, parseGatewayConfig } from "../../../../src/gateway/config.js";
import { parseSyncStats, renderConntrackd } from "../../../../src/gateway/ha/conntrackd.js";
import { shouldYield, vrrpPathWorks } from "../../../../src/gateway/ha/contest.js";
import { describeHa } from "../../../../src/gateway/ha/describe.js";
import { parseNotify, renderKeepalived } from "../../../../src/gateway/ha/keepalived.js";
import { advertCentiseconds, whoAmI } from "../../../../src/gateway/ha/settings.js";
import { parseLinkLine } from "../../../../src/gateway/ha/tunnel-watch.js";
import { planGateway } from "../../../../src/gateway/plan.js";

const ha = (over: Record<string, unknown> = {}) => ({
  vip: "10.23.0.100/24",
  syncInterface: "sync0",
  instances: [
    { name: "gw-a", address: "10.23.0.2", syncAddress: "198.51.100.253", priority: 150 },
    { name: "gw-b", address: "10.23.0.3", syncAddress: "198.51.100.254" },
  ],
  ...over,
});
const config = (over: Record<string, unknown> = {}, snat: string = "198.51.100.1") => ({
  ha: ha(over),
  tenants: [
    {
      name: "acme",
      vni: 100,
      overlaySubnet: "172.16.0.0/24",
      allowedSources: ["10.22.0.0/24"],
      snat,
      upload: { rate: "10mbit" },
      download: { rate: "20mbit" },
    },
  ],
});

describe("the ha block", () => {
  it("defaults to VRRPv3 at 100 ms, router id 51, no preemption", () => {
    const c = parseGatewayConfig(config());
    expect(c.ha).toMatchObject({ vip: "10.23.0.100", vipPrefix: 24, advertCentiseconds: 10, virtualRouterId: 51 });
    expect(c.ha!.preempt).toBe(false);
    expect(c.ha!.instances[1].priority).toBe(100);
  });

  it("refuses masquerade: each tenant needs an egress address that moves with the role", () => {
    expect(() => parseGatewayConfig(config({}, "masquerade"))).toThrow(GatewayConfigError);
    expect(() => parseGatewayConfig(config({}, "masquerade"))).toThrow(/tenants\[0\]\.snat: in HA mode/);
  });

  it("says what is wrong with a pair", () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ advertInterval: "105ms" }, /10 ms steps/],
      [{ vip: "10.23.0.100" }, /with its prefix/],
      [{ vip: "10.99.0.100/24" }, /outside 10\.99\.0\.100\/24/],
      [{ instances: [ha().instances[0]] }, /exactly two/],
    ];
    for (const [over, re] of bad) expect(() => parseGatewayConfig(config(over))).toThrow(re);
  });

  it("reads intervals in 10 ms steps up to 40.95 s", () => {
    expect(advertCentiseconds("100ms")).toBe(10);
    expect(advertCentiseconds("1s")).toBe(100);
    expect(advertCentiseconds("40.95s")).toBe(4095);
    for (const bad of ["0ms", "5ms", "41s", "100"]) expect(advertCentiseconds(bad)).toBeUndefined();
  });

  it("finds itself by its uplink's addresses", () => {
    const c = parseGatewayConfig(config());
    expect(whoAmI(c.ha!, ["10.23.0.3", "10.23.0.100"]).self.name).toBe("gw-b");
    expect(() => whoAmI(c.ha!, ["10.9.9.9"])).toThrow(/none of ha.instances/);
  });

  it("terminates the tunnels on the shared address on both instances", () => {
    const c = parseGatewayConfig(config());
    const s = planGateway(c, {
      uplink: "eth0",
      uplinkIP: "10.23.0.2",
      uplinkMtu: 1500,
      leaf: "tbf",
      fdb: [],
      tracked: [],
      ndp: [],
    });
    expect(s.links[0]).toMatchObject({ name: "tev100", local: "10.23.0.100" });
  });
});

describe("keepalived and conntrackd", () => {
  const c = parseGatewayConfig(config());
  const me = whoAmI(c.ha!, ["10.23.0.2"]);

  it("renders a unicast VRRPv3 instance that tracks the gateway's files and holds only a loopback marker", () => {
    const text = renderKeepalived(c.ha!, me, "eth0", {
      config: "/d/k.conf",
      fifo: "/d/fifo",
      pid: "/d/k.pid",
      vrrpPid: "/d/v.pid",
      yieldFile: "/d/yield",
      tunnelsFile: "/d/tunnels",
    });
    expect(text).toContain("vrrp_version 3");
    expect(text).toContain("advert_int 0.10");
    expect(text).toContain("nopreempt");
    expect(text).toMatch(/unicast_src_ip 10\.23\.0\.2\n\s+unicast_peer \{\n\s+10\.23\.0\.3/);
    // The gateway's say in the election: files keepalived tracks, a non-zero value is FAULT; no
    // tenant appears, so adding one never reloads keepalived.
    expect(text).toMatch(/track_file yield \{\n\s+file "\/d\/yield"\n\s+weight 0\n/);
    expect(text).toMatch(/track_file tunnels \{\n\s+file "\/d\/tunnels"\n\s+weight 0\n/);
    expect(text).toMatch(/track_file \{\n\s+yield\n\s+tunnels\n/);
    expect(text).not.toContain("track_interface");
    expect(text).toMatch(/virtual_ipaddress \{\n\s+127\.255\.0\.51\/32 dev lo/);
    expect(text).not.toContain("10.23.0.100");
  });

  it("reads keepalived's notifications", () => {
    expect(parseNotify('INSTANCE "tenant-egress" MASTER 150')).toBe("MASTER");
    expect(parseNotify('INSTANCE "other" MASTER 150')).toBeUndefined();
    expect(parseNotify('GROUP "g" FAULT')).toBeUndefined();
  });

  it("syncs TCP, UDP and ICMP over the sync link, with per-instance lock and socket", () => {
    const text = renderConntrackd(c.ha!, me, { config: "/d/c.conf", lock: "/d/c.lock", socket: "/d/c.ctl" });
    expect(text).toMatch(/IPv4_address 198\.51\.100\.253\n\s+IPv4_Destination_Address 198\.51\.100\.254/);
    expect(text).toMatch(/TCP\n\s+UDP\n\s+ICMP/);
    expect(text).toContain("LockFile /d/c.lock");
    expect(text).toMatch(/UNIX \{\n\s+Path \/d\/c\.ctl/);
  });

  it("reads conntrackd's statistics", () => {
    const text = `cache internal:
current active connections:	          24
connections created:		          30	failed:	           0

cache external:
current active connections:	           3
connections created:		           3	failed:	           0

UDP traffic (active device=sync0):
                1234 Bytes sent                 567 Bytes recv
                  12 Pckts sent                   7 Pckts recv
                   0 Error send                    1 Error recv

message tracking:
                   0 Malformed msgs                    2 Lost msgs
`;
    expect(parseSyncStats(text)).toEqual({
      internal: 24,
      external: 3,
      sent: 12,
      received: 7,
      sendErrors: 0,
      receiveErrors: 1,
      lost: 2,
    });
    expect(parseSyncStats("nothing")).toBeUndefined();
  });
});

describe("a split brain", () => {
  const a = { name: "gw-a", priority: 150 };
  const b = { name: "gw-b", priority: 100 };

  it("is settled for the instance that was active first, whatever the priorities, and both sides agree", () => {
    const incumbent = { ...b, activeForMs: 60_000 };
    const intruder = { ...a, activeForMs: 400 };
    expect(shouldYield(intruder, incumbent)).toBe(true);
    expect(shouldYield(incumbent, intruder)).toBe(false);
  });

  it("goes to the higher priority, then the lower name, when both became active together", () => {
    expect(shouldYield({ ...b, activeForMs: 1000 }, { ...a, activeForMs: 1020 })).toBe(true);
    expect(shouldYield({ ...a, activeForMs: 1020 }, { ...b, activeForMs: 1000 })).toBe(false);
    const c = { name: "gw-c", priority: 150 };
    expect(shouldYield({ ...c, activeForMs: 1000 }, { ...a, activeForMs: 1000 })).toBe(true);
    expect(shouldYield({ ...a, activeForMs: 1000 }, { ...c, activeForMs: 1000 })).toBe(false);
  });

  it("is VRRP's to settle while an advertisement of the peer was heard since becoming active and lately", () => {
    const now = 100_000;
    expect(vrrpPathWorks(now - 200, now - 5000, now, 1000)).toBe(true);
    // Heard only before becoming active: that silence is what made this instance a candidate.
    expect(vrrpPathWorks(now - 600, now - 300, now, 1000)).toBe(false);
    expect(vrrpPathWorks(now - 2000, now - 5000, now, 1000)).toBe(false);
    expect(vrrpPathWorks(undefined, now - 5000, now, 1000)).toBe(false);
  });
});

describe("the tunnels' watch", () => {
  it.each([
    [
      "up with carrier",
      "7: tev300: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UNKNOWN",
      "tev300",
      true,
    ],
    ["down", "7: tev300: <BROADCAST,MULTICAST> mtu 1450 qdisc noqueue state DOWN", "tev300", false],
    ["no carrier", "2: v1@v0: <NO-CARRIER,BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500", "v1", false],
    ["deleted", "Deleted 7: tev300: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450", "tev300", false],
  ])("reads ip monitor's line for a link %s", (_, line, dev, ok) => {
    expect(parseLinkLine(line)).toEqual({ dev, ok });
  });

  it("ignores ip monitor's continuation lines", () => {
    expect(parseLinkLine("    link/ether 5e:23:78:cc:9a:f2 brd ff:ff:ff:ff:ff:ff")).toBeUndefined();
  });
});

describe("status of a pair", () => {
  it("says why an instance is out of the election", () => {
    const text = describeHa({
      status: {
        instance: "gw-b",
        peer: "gw-a",
        role: "fault",
        vrrpState: "FAULT",
        since: "2026-12-02T03:00:00.000Z",
        transitions: 3,
        yielded: { since: "2026-12-02T03:00:00.000Z", reason: "gw-a was active first" },
        tunnelsDown: ["tev300"],
        sync: { healthy: true, reason: "" },
        replicatedConnections: 0,
        addresses: { moving: ["10.23.0.100"], held: [] },
        podsMirrored: 0,
        children: {},
      },
      ageSeconds: 0,
    });
    expect(text).toContain("out of the election since 2026-12-02T03:00:00.000Z (split brain): gw-a was active first");
    expect(text).toContain("out of the election: tunnel tev300 cannot carry traffic");
  });
});
