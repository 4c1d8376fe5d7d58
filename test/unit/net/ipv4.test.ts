import { describe, expect, it } from "vitest";
import { broadcastOf, cidrContains, explainNotIPv4, formatIPv4, parseCidr, parseIPv4 } from "../../../src/net/ipv4.js";

describe("ipv4", () => {
  it("parses strictly", () => {
    expect(parseIPv4("203.0.113.10")).toBe(0xcb00710a);
    for (const bad of ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-1", " 1.2.3.4", "::1"])
      expect(parseIPv4(bad)).toBeUndefined();
  });

  it("round-trips and does CIDR math", () => {
    expect(formatIPv4(parseIPv4("10.22.0.5")!)).toBe("10.22.0.5");
    const c = parseCidr("10.22.0.0/24")!;
    expect(cidrContains(c, parseIPv4("10.22.0.200")!)).toBe(true);
    expect(cidrContains(c, parseIPv4("10.22.1.1")!)).toBe(false);
    expect(formatIPv4(broadcastOf(c))).toBe("10.22.0.255");
    expect(parseCidr("0.0.0.0/0")).toEqual({ network: 0, prefix: 0 });
    expect(parseCidr("10.22.0.1/24")).toBeUndefined();
    expect(parseCidr("10.22.0.1/24", false)).toEqual(c);
    expect(parseCidr("10.0.0.0/33")).toBeUndefined();
  });

  it("explains what is wrong with a non-IPv4 value", () => {
    expect(explainNotIPv4("2001:db8::1")).toMatch(/IPv6/);
    expect(explainNotIPv4("10.0.0.0/8")).toMatch(/CIDR/);
    expect(explainNotIPv4("x")).toMatch(/not an IPv4 address/);
  });
});
