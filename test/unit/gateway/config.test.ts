import { describe, expect, it } from "vitest";
import { classMinorOf, GatewayConfigError, parseGatewayConfig } from "../../../src/gateway/config.js";
import { formatRate, parseRate, parseSize } from "../../../src/net/rates.js";

const tenant = (over: Record<string, unknown> = {}) => ({
  name: "acme",
  vni: 100,
  overlaySubnet: "172.16.0.0/24",
  allowedSources: ["10.0.0.0/8"],
  upload: { rate: "10mbit" },
  download: { rate: "20mbit", ceil: "50mbit" },
  ...over,
});

describe("rates", () => {
  it("reads tc units", () => {
    expect(parseRate("10mbit")).toBe(10e6);
    expect(parseRate("1gbit")).toBe(1e9);
    expect(parseRate("500kbit")).toBe(500e3);
    expect(parseRate("1mibit")).toBe(1048576);
    expect(parseRate("2mbps")).toBe(16e6);
    expect(parseRate("1.5mbit")).toBe(1.5e6);
    for (const bad of ["10", "10 mbits", "fast", "0mbit", "-1mbit"]) expect(parseRate(bad)).toBeUndefined();
    expect(parseSize("15k")).toBe(15360);
    expect(parseSize("1600b")).toBe(1600);
    expect(formatRate(3.5e6)).toBe("3.5mbit");
  });
});

describe("parseGatewayConfig", () => {
  it("fits 3 + 7 Mbit/s of uploads and downloads on a 10 Mbit/s link", () => {
    const t = (name: string, vni: number, third: number, rate: string) =>
      tenant({
        name,
        vni,
        overlaySubnet: `172.${third}.0.0/24`,
        upload: { rate, ceil: "10mbit" },
        download: { rate, ceil: "10mbit" },
      });
    expect(() =>
      parseGatewayConfig({ linkRate: "10mbit", tenants: [t("a", 1, 16, "3mbit"), t("b", 2, 17, "7mbit")] }),
    ).not.toThrow();
  });

  it("resolves defaults and stable class minors", () => {
    const c = parseGatewayConfig({ linkRate: "1gbit", tenants: [tenant()] });
    expect(c.tenants[0]).toMatchObject({
      port: 4789,
      gatewayOverlayIP: "172.16.0.1",
      snat: "masquerade",
      overlaySubnet6: "fd00:64:7e7e::/48",
      gatewayOverlayIP6: "fd00:64:7e7e::1",
      snat6: "masquerade",
      upload: { rate: 10e6, ceil: 10e6 },
      download: { rate: 20e6, ceil: 50e6 },
      classMinor: classMinorOf(100),
    });
    expect(c.linkRate).toBe(1e9);
  });

  it("takes IPv6 overlay and SNAT settings, in canonical form", () => {
    const c = parseGatewayConfig({
      tenants: [tenant({ overlaySubnet6: "fd00:aa::/64", gatewayOverlayIP6: "FD00:AA::FE", snat6: "2001:DB8::7" })],
    });
    expect(c.tenants[0]).toMatchObject({ gatewayOverlayIP6: "fd00:aa::fe", overlayPrefix6: 64, snat6: "2001:db8::7" });
  });

  it.each([
    [{ tenants: [tenant({ overlaySubnet6: "fd00::1/64" })] }, /tenants\[0\].overlaySubnet6: .*host bits/],
    [{ tenants: [tenant({ overlaySubnet6: "172.16.0.0/24" })] }, /overlaySubnet6: .*IPv4 CIDR; an IPv6 CIDR is needed/],
    [{ tenants: [tenant({ overlaySubnet: "fd00::/64" })] }, /overlaySubnet: .*IPv6 CIDR; an IPv4 CIDR is needed/],
    [{ tenants: [tenant({ gatewayOverlayIP6: "fd00::1" })] }, /gatewayOverlayIP6: fd00::1 is not a host address/],
    [{ tenants: [tenant({ gatewayOverlayIP6: "172.16.0.1" })] }, /gatewayOverlayIP6: .*IPv4 address; an IPv6/],
    [{ tenants: [tenant({ snat6: "198.51.100.7" })] }, /snat6/],
    [{ tenants: [tenant({ snat: "2001:db8::7" })] }, /snat/],
    [{ tenants: [tenant({ allowedSources: ["fd00::/8"] })] }, /allowedSources.*IPv6 CIDR; an IPv4 CIDR is needed/],
    [
      {
        tenants: [
          tenant({ overlaySubnet6: "fd00:1::/64" }),
          tenant({ name: "b", vni: 200, overlaySubnet: "172.17.0.0/24", overlaySubnet6: "fd00::/16" }),
        ],
      },
      /tenants\[1\].overlaySubnet6: fd00::\/16 overlaps tenants\[0\].overlaySubnet6 fd00:1::\/64/,
    ],
  ])("refuses bad IPv6 settings (%#)", (input, message) => {
    expect(() => parseGatewayConfig(input)).toThrow(message);
  });

  it.each([
    [{ tenants: [tenant({ extra: 1 })] }, /tenants\[0\]: unknown key "extra"/],
    [{ tenants: [tenant({ upload: { rate: "10" } })] }, /tenants\[0\].upload.rate: "10" is not a rate with a tc unit/],
    [
      { tenants: [tenant({ upload: { rate: "10mbit", ceil: "5mbit" } })] },
      /tenants\[0\].upload.ceil: 5mbit is below rate 10mbit/,
    ],
    [{ linkRate: "15mbit", tenants: [tenant()] }, /download.ceil: 50mbit is above linkRate 15mbit/],
    [
      {
        linkRate: "100mbit",
        tenants: [
          tenant(),
          tenant({
            name: "b",
            vni: 200,
            overlaySubnet: "172.17.0.0/24",
            upload: { rate: "90.5mbit" },
            download: { rate: "30mbit" },
          }),
        ],
      },
      /guaranteed upload rates add up to 100.5mbit, more than linkRate 100mbit/,
    ],
    [
      {
        linkRate: "100mbit",
        tenants: [
          tenant({ download: { rate: "60mbit" } }),
          tenant({ name: "b", vni: 200, overlaySubnet: "172.17.0.0/24", download: { rate: "50mbit" } }),
        ],
      },
      /guaranteed download rates add up to 110mbit/,
    ],
    [{ tenants: [tenant(), tenant({ name: "b" })] }, /tenants\[1\].vni: 100 is also used by tenants\[0\]/],
    [{ tenants: [tenant(), tenant({ vni: 200 })] }, /tenants\[1\].name: acme is also used/],
    [{ tenants: [tenant(), tenant({ name: "b", vni: 200, overlaySubnet: "172.16.0.128/25" })] }, /overlaps/],
    [{ tenants: [tenant(), tenant({ name: "b", vni: 100 + 0xffef })] }, /same traffic class/],
    [{ tenants: [tenant({ overlaySubnet: "172.0.0.0/12" })] }, /must be \/16 to \/30/],
    [{ tenants: [tenant({ allowedSources: [] })] }, /allowedSources/],
    [{ tenants: [tenant({ snat: "2001:db8::1" })] }, /snat/],
    [{ tenants: [tenant({ vni: 0 })] }, /vni/],
    [{ tenants: [tenant({ upload: { rate: "1mbit", burst: "100b" } })] }, /burst: 100b is smaller than one frame/],
    [{ uplink: "eth0/1", tenants: [] }, /uplink/],
  ])("rejects %j naming the field", (input, message) => {
    expect(() => parseGatewayConfig(input)).toThrow(GatewayConfigError);
    expect(() => parseGatewayConfig(input)).toThrow(message);
  });
});
