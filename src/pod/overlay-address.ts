/**
 * The pod's address inside its tenant's overlay. It must be unique per tenant across the
 * cluster, because the gateway tells pods apart by it. By default it is derived from the pod's
 * IP: the pod IP's host bits placed into the overlay subnet, so no state, no allocator and no
 * coordination is needed, and it is stable for the life of the pod IP. This is unique as long
 * as the overlay subnet has at least as many host bits as the cluster's pod network; where that
 * does not hold, configure an `ipam` block and let an IPAM plugin allocate instead.
 */
import { CniError, ErrorCode } from "../cni/errors.js";
import { broadcastOf, cidrContains, formatCidr, formatIPv4, maskOf, parseIPv4 } from "../net/ipv4.js";
import type { TunnelSettings } from "./config.js";

/** Checks that `ip` can be a pod's overlay address in `t`'s overlay subnet. */
export function checkOverlayAddress(
  ip: string,
  t: TunnelSettings,
  origin: string,
  code: number = ErrorCode.InvalidEnvironment,
): string {
  const addr = parseIPv4(ip);
  const subnet = formatCidr(t.overlaySubnet);
  if (addr === undefined) throw new CniError(code, `${origin}: "${ip}" is not an IPv4 address`);
  if (!cidrContains(t.overlaySubnet, addr))
    throw new CniError(code, `${origin}: ${ip} is outside the overlay subnet ${subnet}`);
  if (ip === t.gatewayOverlayIP) throw new CniError(code, `${origin}: ${ip} is the gateway's overlay address`);
  if (addr === t.overlaySubnet.network || addr === broadcastOf(t.overlaySubnet)) {
    throw new CniError(code, `${origin}: ${ip} is the network or broadcast address of ${subnet}`);
  }
  return ip;
}

/** The overlay address derived from the pod IP's host bits. */
export function deriveOverlayAddress(podIP: string, t: TunnelSettings): string {
  const pod = parseIPv4(podIP) as number;
  const hostBits = (pod & ~maskOf(t.overlaySubnet.prefix)) >>> 0;
  const derived = formatIPv4((t.overlaySubnet.network | hostBits) >>> 0);
  return checkOverlayAddress(
    derived,
    t,
    `overlay address derived from pod IP ${podIP} into ${formatCidr(t.overlaySubnet)} (pin one with EGRESS_OVERLAY_IP, or configure ipam)`,
    ErrorCode.InvalidConfig,
  );
}
