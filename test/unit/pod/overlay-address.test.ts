import { describe, expect, it } from "vitest";
import { overlayMac } from "../../../src/net/vxlan.js";
import { parseConfig } from "../../../src/pod/config.js";
import { checkOverlayAddress, deriveOverlayAddress } from "../../../src/pod/overlay-address.js";

const t = parseConfig({ cniVersion: "1.0.0", type: "tenant-egress" }).defaults;
const small = parseConfig({ cniVersion: "1.0.0", type: "tenant-egress", overlaySubnet: "172.16.5.0/24" }).defaults;

describe("overlay addresses", () => {
  it("puts the pod IP's host bits into the overlay subnet", () => {
    expect(deriveOverlayAddress("10.244.3.17", t)).toBe("172.16.3.17");
    expect(deriveOverlayAddress("10.22.0.5", small)).toBe("172.16.5.5");
  });

  it("refuses a derivation that lands on the gateway, network or broadcast address", () => {
    expect(() => deriveOverlayAddress("10.22.0.1", small)).toThrow(/gateway's overlay address/);
    expect(() => deriveOverlayAddress("10.22.0.0", small)).toThrow(/network or broadcast/);
    expect(() => deriveOverlayAddress("10.22.0.255", small)).toThrow(/network or broadcast/);
  });

  it("checks pinned addresses", () => {
    expect(checkOverlayAddress("172.16.9.9", t, "pin")).toBe("172.16.9.9");
    expect(() => checkOverlayAddress("172.17.0.1", t, "pin")).toThrow(/outside the overlay subnet/);
    expect(() => checkOverlayAddress("172.16.0.1", t, "pin")).toThrow(/gateway's overlay address/);
  });

  it("derives the overlay IPv6 from the pod IPv6's host bits, with the same checks", () => {
    expect(deriveOverlayAddress("fd00:10:22::5", t, 6)).toBe("fd00:64:7e7e::5");
    expect(deriveOverlayAddress("fd00:10:22:3:0:0:0:11", t, 6)).toBe("fd00:64:7e7e:3::11");
    expect(() => deriveOverlayAddress("fd00:10:22::1", t, 6)).toThrow(
      /overlay IPv6 address derived from pod IP fd00:10:22::1 .*gateway's overlay address.*/,
    );
    expect(() => deriveOverlayAddress("fd00:10:22::", t, 6)).toThrow(/network \(subnet-router anycast\)/);
    expect(() => deriveOverlayAddress("fd00:10:22::1", t, 6)).toThrow(/EGRESS_OVERLAY_IP6/);
  });

  it("checks pinned IPv6 addresses", () => {
    expect(checkOverlayAddress("FD00:64:7E7E::9", t, "pin", 4, 6)).toBe("fd00:64:7e7e::9");
    expect(() => checkOverlayAddress("fd7f::9", t, "pin", 4, 6)).toThrow(
      /outside the overlay subnet fd00:64:7e7e::\/48/,
    );
    expect(() => checkOverlayAddress("fd00:64:7e7e:0::1", t, "pin", 4, 6)).toThrow(/gateway's overlay address/);
    expect(() => checkOverlayAddress("172.16.0.9", t, "pin", 4, 6)).toThrow(/"172.16.0.9" is not an IPv6 address/);
  });

  it("derives a locally administered unicast MAC from the overlay address", () => {
    expect(overlayMac("172.16.0.5")).toBe("02:7e:ac:10:00:05");
  });
});
