import { describe, expect, it } from "vitest";
import { gatewayConfig, parseTenantsFile, pluginConfig, pluginEntry } from "../../../src/tenants/file.js";

const acme = {
  name: "acme",
  tunnel: { gateway: "10.23.0.2", vni: 100, overlaySubnet: "172.16.0.0/16" },
  namespaces: ["acme-prod", "acme-ci"],
  upload: { rate: "20mbit" },
  download: { rate: "40mbit", ceil: "80mbit" },
  allowedSources: ["10.22.0.0/16"],
};
const globex = {
  ...acme,
  name: "globex",
  tunnel: {
    gateway: "10.23.0.3",
    vni: 200,
    port: 4790,
    overlaySubnet: "172.17.0.0/16",
    gatewayOverlayIP: "172.17.0.254",
    overlaySubnet6: "fd00:bb::/64",
    gatewayOverlayIP6: "FD00:BB::FE",
  },
  namespaces: ["globex"],
  snat: "198.51.100.7",
  snat6: "2001:db8:198:51:100::7",
};
const file = {
  plugin: { enforce: true, excludeCIDRs: ["100.100.0.0/16"] },
  gateway: { uplink: "eth0", linkRate: "1gbit" },
  tenants: [acme, globex],
};

describe("the tenants file", () => {
  it("renders the plugin's conflist entry: tenants, namespaces, the annotations capability", () => {
    expect(pluginEntry(parseTenantsFile(file))).toEqual({
      type: "tenant-egress",
      capabilities: { "io.kubernetes.cri.pod-annotations": true },
      enforce: true,
      excludeCIDRs: ["100.100.0.0/16"],
      tenants: {
        acme: {
          gateway: "10.23.0.2",
          vni: 100,
          vxlanPort: 4789,
          overlaySubnet: "172.16.0.0/16",
          gatewayOverlayIP: "172.16.0.1",
          overlaySubnet6: "fd00:64:7e7e::/48",
          gatewayOverlayIP6: "fd00:64:7e7e::1",
        },
        globex: {
          gateway: "10.23.0.3",
          vni: 200,
          vxlanPort: 4790,
          overlaySubnet: "172.17.0.0/16",
          gatewayOverlayIP: "172.17.0.254",
          overlaySubnet6: "fd00:bb::/64",
          gatewayOverlayIP6: "fd00:bb::fe",
        },
      },
      namespaces: { "acme-prod": "acme", "acme-ci": "acme", globex: "globex" },
    });
  });

  it("gives both halves the same tunnel: VNI, port, overlay and the gateway's overlay address", () => {
    const parsed = parseTenantsFile(file);
    const pod = pluginConfig(parsed);
    const gw = gatewayConfig(parsed);
    for (const t of gw.tenants) {
      const p = pod.tenants[t.name]!;
      expect([p.vni, p.vxlanPort, p.overlaySubnet, p.gatewayOverlayIP, p.overlaySubnet6, p.gatewayOverlayIP6]).toEqual([
        t.vni,
        t.port,
        t.overlaySubnet,
        t.gatewayOverlayIP,
        t.overlaySubnet6,
        t.gatewayOverlayIP6,
      ]);
    }
    expect(gw).toMatchObject({
      uplink: "eth0",
      linkRate: 1e9,
      tenants: [
        { name: "acme", snat: "masquerade", snat6: "masquerade", download: { rate: 40e6, ceil: 80e6 } },
        { name: "globex", snat: "198.51.100.7", snat6: "2001:db8:198:51:100::7" },
      ],
    });
  });

  it("a default tenant becomes the conflist's default gateway", () => {
    expect(pluginEntry(parseTenantsFile({ ...file, plugin: { defaultTenant: "globex" } }))).toMatchObject({
      gateway: "10.23.0.3",
      vni: 200,
      vxlanPort: 4790,
    });
  });

  it.each([
    [{ ...file, tenants: [acme, { ...acme }] }, /tenants\[1\]\.name: "acme" is defined twice/],
    [
      { ...file, tenants: [acme, { ...globex, namespaces: ["acme-ci"] }] },
      /namespace "acme-ci" already belongs to tenant "acme"/,
    ],
    [
      { ...file, tenants: [{ ...acme, tunnel: { ...acme.tunnel, vni: 0 } }] },
      /tenants\.0\.tunnel\.vni: a VXLAN VNI is 1-16777215/,
    ],
    [
      { ...file, tenants: [{ ...acme, upload: { rate: "fast" } }] },
      /as the gateway's configuration: .*"fast" is not a rate/,
    ],
    [
      { ...file, tenants: [{ ...acme, tunnel: { ...acme.tunnel, gatewayOverlayIP: "172.18.0.1" } }] },
      /as the plugin's conflist entry: .*gatewayOverlayIP: 172.18.0.1 is not a host address inside overlaySubnet/,
    ],
    [
      { ...file, tenants: [{ ...acme, tunnel: { ...acme.tunnel, overlaySubnet6: "172.18.0.0/16" } }] },
      /tenants\.0\.tunnel\.overlaySubnet6: "172.18.0.0\/16" is an IPv4 CIDR; an IPv6 CIDR is needed/,
    ],
    [
      { ...file, tenants: [{ ...acme, tunnel: { ...acme.tunnel, gatewayOverlayIP6: "fd00:65::1" } }] },
      /as the plugin's conflist entry: .*gatewayOverlayIP6: fd00:65::1 is not a host address inside overlaySubnet6/,
    ],
    [{ ...file, tenants: [{ ...acme, snat6: "198.51.100.7" }] }, /snat6/],
    [
      {
        ...file,
        tenants: [
          acme,
          { ...globex, tunnel: { ...globex.tunnel, overlaySubnet6: "fd00:64::/32", gatewayOverlayIP6: "fd00:64::fe" } },
        ],
      },
      /as the gateway's configuration: tenants\[1\]\.overlaySubnet6: fd00:64::\/32 overlaps tenants\[0\]\.overlaySubnet6/,
    ],
    [{ ...file, plugin: { defaultTenant: "nobody" } }, /plugin\.defaultTenant: tenant "nobody" is not defined/],
    [{ ...file, extra: 1 }, /unknown key "extra"/],
  ])("refuses what either half would refuse (%#)", (input, message) => {
    expect(() => parseTenantsFile(input)).toThrow(message);
  });
});

describe("a tenants file for a gateway pair", () => {
  const ha = {
    vip: "10.23.0.100/24",
    syncInterface: "sync0",
    instances: [
      { name: "gw-a", address: "10.23.0.2", syncAddress: "198.51.100.253" },
      { name: "gw-b", address: "10.23.0.3", syncAddress: "198.51.100.254" },
    ],
  };
  const pair = (gateway: string, snat = "198.51.100.1") => ({
    gateway: { uplink: "eth0", ha },
    tenants: [{ ...acme, tunnel: { ...acme.tunnel, gateway }, snat }],
  });

  it("gives the gateway its ha block and points pods at the shared address", () => {
    const parsed = parseTenantsFile(pair("10.23.0.100"));
    expect(gatewayConfig(parsed).ha).toMatchObject({ vip: "10.23.0.100", vipPrefix: 24 });
    expect(pluginConfig(parsed).tenants.acme!.gateway).toBe("10.23.0.100");
  });

  it("refuses pods pointed at one instance, and tenants that masquerade", () => {
    expect(() => parseTenantsFile(pair("10.23.0.2"))).toThrow(
      "tenants[0].tunnel.gateway: 10.23.0.2 is not gateway.ha.vip's address 10.23.0.100",
    );
    expect(() => parseTenantsFile(pair("10.23.0.100", "masquerade"))).toThrow(/snat: in HA mode/);
  });
});
