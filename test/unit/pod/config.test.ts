import { describe, expect, it } from "vitest";
import { CniError } from "../../../src/cni/errors.js";
import { parseCidr } from "../../../src/net/ip.js";
import { defaultOverlaySubnet6 } from "../../../src/net/vxlan.js";
import { exclusions, exclusions6, parseConfig } from "../../../src/pod/config.js";

const base = { cniVersion: "1.0.0", name: "n", type: "tenant-egress" };

function errorOf(conf: unknown): CniError {
  try {
    parseConfig(conf);
  } catch (e) {
    return e as CniError;
  }
  throw new Error("expected parseConfig to fail");
}

describe("parseConfig", () => {
  it("fills the documented defaults", () => {
    const c = parseConfig(base);
    expect(c).toMatchObject({
      vni: 100,
      vxlanPort: 4789,
      overlaySubnet: "172.16.0.0/16",
      routeTable: 200,
      mark: "0xa/0xff",
      rulePriority: 1000,
    });
    expect(c.defaults.gatewayOverlayIP).toBe("172.16.0.1");
    expect(c.defaults.overlaySubnet6).toEqual(parseCidr("fd00:64:7e7e::/48"));
    expect(c.defaults.gatewayOverlayIP6).toBe("fd00:64:7e7e::1");
  });

  it("takes IPv6 overlay settings (canonical form) and exclusions of both families", () => {
    const c = parseConfig({
      ...base,
      overlaySubnet6: "fd00:aa::/64",
      gatewayOverlayIP6: "FD00:AA:0:0::FE",
      excludeCIDRs: ["198.51.100.0/24", "2001:db8:100::/48"],
      tenants: { t: { gateway: "1.2.3.4", overlaySubnet6: "fd00:bb::/64" } },
    });
    expect(c.defaults.gatewayOverlayIP6).toBe("fd00:aa::fe");
    expect(defaultOverlaySubnet6(0xabcdef)).toBe("fdab:cdef:7e7e::/48");
    expect(exclusions(c)).toContain("198.51.100.0/24");
    expect(exclusions(c)).not.toContain("2001:db8:100::/48");
    expect(exclusions6(c)).toEqual(["::1/128", "fe80::/10", "fc00::/7", "ff00::/8", "2001:db8:100::/48"]);
  });

  it("normalises marks to the hex form ip and iptables print", () => {
    expect(parseConfig({ ...base, mark: "10/255" }).mark).toBe("0xa/0xff");
    expect(parseConfig({ ...base, mark: "0x100/0xF00" }).mark).toBe("0x100/0xf00");
  });

  it("accepts the standard CNI keys and capabilities", () => {
    expect(() =>
      parseConfig({
        ...base,
        capabilities: { "io.kubernetes.cri.pod-annotations": true },
        runtimeConfig: {},
        args: {},
        prevResult: {},
        ipam: { type: "host-local", subnet: "x" },
      }),
    ).not.toThrow();
  });

  it.each([
    [{ bogus: 1 }, /unknown configuration key "bogus"/],
    [{ tenants: { a: { gateway: "1.2.3.4", extra: true } } }, /unknown configuration key "extra" in tenants.a/],
    [{ vni: 0 }, /vni: a VXLAN VNI is 1-16777215/],
    [{ vni: 16777216 }, /vni/],
    [{ vxlanPort: 65536 }, /vxlanPort/],
    [{ vxlanPort: 0 }, /vxlanPort/],
    [{ gateway: "2001:db8::1" }, /gateway: "2001:db8::1" is an IPv6 address/],
    [{ gateway: "10.0.0.0/8" }, /gateway: "10.0.0.0\/8" is a CIDR/],
    [{ gateway: "010.1.1.1" }, /gateway/],
    [{ overlaySubnet: "172.16.0.1/16" }, /overlaySubnet: .*host bits zero/],
    [{ overlaySubnet: "172.16.0.0/31" }, /no room for pods/],
    [{ gatewayOverlayIP: "10.0.0.1" }, /gatewayOverlayIP: 10.0.0.1 is not a host address inside overlaySubnet/],
    [{ gatewayOverlayIP: "172.16.0.0" }, /gatewayOverlayIP/],
    [{ routeTable: 0 }, /routeTable/],
    [{ routeTable: 254 }, /routeTable: tables 253-255/],
    [{ mark: "10" }, /mark: "10" is not value\/mask/],
    [{ mark: "0x10/0xf" }, /bits outside mask/],
    [{ mark: "0/0xff" }, /non-zero/],
    [{ mtu: 100 }, /mtu/],
    [{ mtu: 1400, mss: 1380 }, /mss: 1380 does not fit in mtu 1400/],
    [{ excludeCIDRs: ["1.2.3.4"] }, /excludeCIDRs.0/],
    [{ excludeCIDRs: ["2001:db8::1/32"] }, /excludeCIDRs.0: "2001:db8::1\/32" has host bits set/],
    [{ overlaySubnet: "fd00::/64" }, /overlaySubnet: "fd00::\/64" is an IPv6 CIDR; an IPv4 CIDR is needed/],
    [{ overlaySubnet6: "172.16.0.0/16" }, /overlaySubnet6: "172.16.0.0\/16" is an IPv4 CIDR; an IPv6 CIDR is needed/],
    [{ overlaySubnet6: "fd00::1/64" }, /overlaySubnet6: .*host bits zero/],
    [{ overlaySubnet6: "fd00::/127" }, /overlaySubnet6: fd00::\/127 has no room for pods/],
    [{ overlaySubnet6: "fd00::/129" }, /overlaySubnet6/],
    [
      { gatewayOverlayIP6: "172.16.0.1" },
      /gatewayOverlayIP6: "172.16.0.1" is an IPv4 address; an IPv6 address is needed/,
    ],
    [{ gatewayOverlayIP6: "fe80::1%eth0" }, /gatewayOverlayIP6: "fe80::1%eth0" is not an IPv6 address/],
    [{ gatewayOverlayIP6: "fd00::1" }, /gatewayOverlayIP6: fd00::1 is not a host address inside overlaySubnet6/],
    [{ gatewayOverlayIP: "fd00:64:7e7e::1" }, /gatewayOverlayIP: .* is an IPv6 address; an IPv4 address is needed/],
    [{ tenants: { a: { gateway: "1.2.3.4", overlaySubnet6: "10.0.0.0/8" } } }, /tenants.a.overlaySubnet6/],
    [{ namespaces: { team: "nope" } }, /namespaces.team: tenant "nope" is not defined/],
    [{ type: "other" }, /type must be "tenant-egress"/],
    [
      { tenants: { a: { gateway: "1.2.3.4", overlaySubnet: "10.9.0.0/24", gatewayOverlayIP: "10.8.0.1" } } },
      /tenants.a.gatewayOverlayIP/,
    ],
  ])("rejects %j with code 7 naming the field", (extra, message) => {
    const e = errorOf({ ...base, ...extra });
    expect(e).toBeInstanceOf(CniError);
    expect(e.code).toBe(7);
    expect(e.message).toMatch(message);
  });
});
