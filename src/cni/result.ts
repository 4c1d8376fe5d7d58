/**
 * Reading the main plugin's result (prevResult). A chained plugin must return it unchanged, so
 * we only look inside for the pod's addresses on CNI_IFNAME (and its MAC, for enforcement), in
 * either result format (0.3.x/0.4.0 carry `version: "4"` per IP, 1.x does not).
 */
import * as z from "zod/mini";
import { canonicalIP, type Family, familyOf, parseCidr } from "../net/ip.js";
import { CniError, ErrorCode } from "./errors.js";

const PrevResult = z.looseObject({
  interfaces: z.optional(
    z.array(z.looseObject({ name: z.string(), sandbox: z.optional(z.string()), mac: z.optional(z.string()) })),
  ),
  ips: z.optional(z.array(z.looseObject({ address: z.string(), interface: z.optional(z.int().check(z.minimum(0))) }))),
});

export interface PodAddress {
  ip: string;
  prefix: number;
}

const invalid = (msg: string) => new CniError(ErrorCode.DecodingFailure, msg);

export interface PodAddresses {
  /** The tunnel's underlay: the outer packets are IPv4. */
  ipv4: PodAddress;
  /** Present on a dual-stack pod: its public IPv6 is steered too. */
  ipv6?: PodAddress;
}

/** The first address of `family` among prevResult's entries, in canonical form. */
function firstOf(ips: ReturnType<typeof podIPs>, family: Family): PodAddress | undefined {
  for (const ip of ips) {
    const cidr = parseCidr(ip.address, false, family);
    const addr = canonicalIP(ip.address.slice(0, ip.address.indexOf("/")));
    if (cidr && addr) return { ip: addr, prefix: cidr.prefix };
  }
  return undefined;
}

/**
 * The pod's addresses on `ifname`: its IPv4, and its IPv6 when it has one. Most main plugins
 * (bridge, ptp, macvlan, ipvlan) tie each IP to an interface index; when none of the IPs
 * carries one, the first of each family is the pod's.
 */
export function podAddresses(prevResult: unknown, ifname: string): PodAddresses {
  const ips = podIPs(prevResult, ifname);
  const ipv4 = firstOf(ips, 4);
  const ipv6 = firstOf(ips, 6);
  if (!ipv4) {
    throw invalid(
      ipv6
        ? `prevResult has only IPv6 on interface ${ifname} in the container (${ipv6.ip}): tenant-egress's tunnel is VXLAN over the pod's IPv4, so an IPv6-only pod cannot reach its gateway; give ${ifname} an IPv4 address too (dual-stack)`
        : `prevResult has no IPv4 address on interface ${ifname} in the container (tenant-egress's tunnel is VXLAN over the pod's IPv4; check that the main plugin assigns ${ifname} an IPv4 address)`,
    );
  }
  return ipv6 ? { ipv4, ipv6 } : { ipv4 };
}

/** Everything prevResult says the pod owns on `ifname`: every address of both families, and its MAC. */
export interface PodIdentity {
  ipv4: string[];
  ipv6: string[];
  mac?: string;
}

export function podIdentity(prevResult: unknown, ifname: string): PodIdentity {
  const addrs = podIPs(prevResult, ifname).map((ip) => ip.address.split("/")[0]!);
  const { interfaces = [] } = PrevResult.parse(prevResult);
  const mac = interfaces.find((i) => i.name === ifname && i.sandbox)?.mac?.toLowerCase();
  return {
    ipv4: addrs.filter((a) => familyOf(a) === 4),
    ipv6: addrs.filter((a) => familyOf(a) === 6).map((a) => canonicalIP(a)!),
    ...(mac && MAC.test(mac) ? { mac } : {}),
  };
}

export const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function podIPs(prevResult: unknown, ifname: string) {
  if (prevResult === undefined || prevResult === null) {
    throw invalid(
      `prevResult is missing: tenant-egress is a chained plugin and must follow a main plugin (bridge, ptp, …) that assigns ${ifname} an address`,
    );
  }
  const parsed = PrevResult.safeParse(prevResult);
  if (!parsed.success)
    throw invalid(
      `prevResult is malformed: ${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message}`,
    );
  const { interfaces = [], ips = [] } = parsed.data;
  const indexed = ips.some((ip) => ip.interface !== undefined);
  const candidates = indexed
    ? ips.filter((ip) => {
        const iface = interfaces[ip.interface ?? -1];
        return iface?.name === ifname && iface.sandbox !== undefined && iface.sandbox !== "";
      })
    : ips;
  return candidates;
}
