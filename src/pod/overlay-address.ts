/**
 * The pod's addresses inside its tenant's overlay, one per family it has. Each must be unique
 * per tenant across the cluster, because the gateway tells pods apart by it. By default it is
 * derived from the pod's own address of that family: its host bits placed into the overlay
 * subnet (`overlaySubnet`, `overlaySubnet6`), so no state, no allocator and no coordination is
 * needed, and it is stable for the life of the pod's address. This is unique as long as the
 * overlay subnet has at least as many host bits as the cluster's pod network of that family;
 * where that does not hold, configure an `ipam` block and let an IPAM plugin allocate instead,
 * or pin one per pod.
 */
import { CniError, ErrorCode } from "../cni/errors.js";
import {
  canonicalIP,
  cidrContains,
  type Family,
  formatCidr,
  formatIP,
  isHostOf,
  parseIP,
  placeHostBits,
} from "../net/ip.js";
import type { TunnelSettings } from "./config.js";

const NAME: Record<Family, string> = { 4: "IPv4", 6: "IPv6" };

function overlayOf(t: TunnelSettings, family: Family) {
  return family === 4
    ? { subnet: t.overlaySubnet, gateway: t.gatewayOverlayIP, field: "overlaySubnet", pin: "EGRESS_OVERLAY_IP" }
    : { subnet: t.overlaySubnet6, gateway: t.gatewayOverlayIP6, field: "overlaySubnet6", pin: "EGRESS_OVERLAY_IP6" };
}

/** Checks that `ip` can be a pod's overlay address of `family` in `t`'s overlay; returns it in canonical form. */
export function checkOverlayAddress(
  ip: string,
  t: TunnelSettings,
  origin: string,
  code: number = ErrorCode.InvalidEnvironment,
  family: Family = 4,
): string {
  const o = overlayOf(t, family);
  const addr = parseIP(ip, family);
  const subnet = formatCidr(o.subnet);
  if (addr === undefined)
    throw new CniError(code, `${origin}: ${JSON.stringify(ip)} is not an ${NAME[family]} address`);
  const canonical = canonicalIP(ip)!;
  if (canonical === o.gateway) throw new CniError(code, `${origin}: ${canonical} is the gateway's overlay address`);
  if (!cidrContains(o.subnet, addr))
    throw new CniError(code, `${origin}: ${canonical} is outside the overlay subnet ${subnet}`);
  if (!isHostOf(o.subnet, addr)) {
    const what = family === 4 ? "network or broadcast" : "network (subnet-router anycast)";
    throw new CniError(code, `${origin}: ${canonical} is the ${what} address of ${subnet}`);
  }
  return canonical;
}

/** The overlay address of `family` derived from the pod's address of that family. */
export function deriveOverlayAddress(podIP: string, t: TunnelSettings, family: Family = 4): string {
  const o = overlayOf(t, family);
  const derived = formatIP(family, placeHostBits(o.subnet, parseIP(podIP, family)!));
  return checkOverlayAddress(
    derived,
    t,
    `overlay ${NAME[family]} address derived from pod IP ${podIP} into ${o.field} ${formatCidr(o.subnet)} (pin one with ${o.pin}, or configure ipam)`,
    ErrorCode.InvalidConfig,
    family,
  );
}
