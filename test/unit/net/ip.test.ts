import { describe, expect, it } from "vitest";
import {
  canonicalIP,
  cidrContains,
  cidrsOverlap,
  explainNotCidr,
  explainNotIP,
  familyOf,
  firstHost,
  formatCidr,
  formatIP,
  isHostOf,
  lastAddress,
  parseCidr,
  parseIP,
  placeHostBits,
} from "../../../src/net/ip.js";

describe("ip", () => {
  it("parses IPv4 strictly", () => {
    expect(parseIP("203.0.113.10")).toBe(0xcb00710an);
    for (const bad of ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-1", " 1.2.3.4", "1.2.3.4\n"])
      expect(parseIP(bad)).toBeUndefined();
    expect(parseIP("::1", 4)).toBeUndefined();
    expect(parseIP("10.0.0.1", 6)).toBeUndefined();
  });

  it("parses IPv6 strictly: no zone id, no dotted tail, no brackets", () => {
    expect(parseIP("2001:db8::1")).toBe(0x20010db8000000000000000000000001n);
    for (const bad of ["fe80::1%eth0", "::ffff:1.2.3.4", "[::1]", "2001:db8:::1", "2001:db8::g", "1:2:3:4:5:6:7:8:9"])
      expect(familyOf(bad)).toBeUndefined();
  });

  it("takes exactly the IPv6 forms node:net's isIPv6 takes (without zone id or dotted tail)", () => {
    for (const good of ["::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1::2:3:4:5:6:7"])
      expect(familyOf(good)).toBe(6);
    for (const bad of [
      "",
      ":",
      ":::",
      ":1::",
      "1::2::3",
      "12345::",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6::7:8",
      "1:2:3:4:5:6:7:8::",
      " ::1",
    ])
      expect(familyOf(bad)).toBeUndefined();
  });

  it("formats addresses canonically (RFC 5952 for IPv6, what ip and ip6tables print)", () => {
    expect(formatIP(4, 0x0a160005n)).toBe("10.22.0.5");
    expect(canonicalIP("2001:0DB8:0000:0000:0000:0000:0000:0010")).toBe("2001:db8::10");
    expect(canonicalIP("fd00:0:0:1::")).toBe("fd00:0:0:1::");
    expect(canonicalIP("nope")).toBeUndefined();
  });

  it("does CIDR math in both families", () => {
    const c = parseCidr("10.22.0.0/24")!;
    expect(c).toEqual({ family: 4, network: 0x0a160000n, prefix: 24 });
    expect(cidrContains(c, "10.22.0.200")).toBe(true);
    expect(cidrContains(c, "10.22.1.1")).toBe(false);
    expect(cidrContains(c, "::1")).toBe(false);
    expect(formatIP(4, lastAddress(c))).toBe("10.22.0.255");
    expect(formatIP(4, firstHost(c))).toBe("10.22.0.1");
    const v6 = parseCidr("fd00:10:22::/64")!;
    expect(formatCidr(v6)).toBe("fd00:10:22::/64");
    expect(cidrContains(v6, "fd00:10:22::ffff")).toBe(true);
    expect(cidrContains(v6, parseIP("fd00:10:23::1")!)).toBe(false);
    expect(formatIP(6, lastAddress(v6))).toBe("fd00:10:22:0:ffff:ffff:ffff:ffff");
    expect(cidrsOverlap(parseCidr("fd00::/8")!, v6)).toBe(true);
    expect(cidrsOverlap(parseCidr("10.0.0.0/8")!, v6)).toBe(false);
    expect(parseCidr("::/0")).toEqual({ family: 6, network: 0n, prefix: 0 });
  });

  it("refuses CIDRs with host bits set (strict), a bad prefix or the other family", () => {
    expect(parseCidr("10.22.0.1/24")).toBeUndefined();
    expect(parseCidr("10.22.0.1/24", false)).toEqual(parseCidr("10.22.0.0/24"));
    expect(parseCidr("fd00::1/64")).toBeUndefined();
    for (const bad of [
      "10.0.0.0/33",
      "::/129",
      "10.0.0.0/08",
      "10.0.0.0/",
      "10.0.0.0/-1",
      "10.0.0.0",
      "fd00::/64",
      "fe80::%1/64",
    ])
      expect(parseCidr(bad, true, bad.startsWith("fd") ? 4 : undefined)).toBeUndefined();
  });

  it("places host bits and tells hosts from network and broadcast addresses", () => {
    const overlay6 = parseCidr("fd7e::/64")!;
    expect(formatIP(6, placeHostBits(overlay6, parseIP("fd00:10:22::1:5")!))).toBe("fd7e::1:5");
    const overlay4 = parseCidr("172.16.0.0/16")!;
    expect(formatIP(4, placeHostBits(overlay4, parseIP("10.244.3.17")!))).toBe("172.16.3.17");
    expect(isHostOf(overlay4, parseIP("172.16.255.255")!)).toBe(false);
    expect(isHostOf(overlay4, overlay4.network)).toBe(false);
    expect(isHostOf(overlay6, parseIP("fd7e::ffff:ffff:ffff:ffff")!)).toBe(true);
    expect(isHostOf(overlay6, overlay6.network)).toBe(false);
  });

  it("explains what is wrong, quoting hostile input", () => {
    expect(explainNotIP("2001:db8::1", 4)).toMatch(/IPv6 address; an IPv4 address is needed/);
    expect(explainNotIP("10.0.0.1", 6)).toMatch(/IPv4 address; an IPv6 address is needed/);
    expect(explainNotIP("10.0.0.0/8", 4)).toMatch(/CIDR/);
    expect(explainNotIP("x\ny", 4)).toBe('"x\\ny" is not an IPv4 address');
    expect(explainNotCidr("10.0.0.1/8")).toMatch(/host bits set.*10\.0\.0\.0\/8/);
    expect(explainNotCidr("fd00::/8", 4)).toMatch(/IPv6 CIDR; an IPv4 CIDR is needed/);
    expect(explainNotCidr("10.0.0.0/8", 6)).toMatch(/IPv4 CIDR; an IPv6 CIDR is needed/);
  });
});
