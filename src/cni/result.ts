/**
 * Reading the main plugin's result (prevResult). A chained plugin must return it unchanged, so
 * we only look inside for the pod's addresses on CNI_IFNAME (and its MAC, for enforcement), in
 * either result format (0.3.x/0.4.0 carry `version: "4"` per IP, 1.x does not).
 */
import { isIPv4, isIPv6 } from "node:net";
import * as z from "zod/mini";
import { parseCidr, parseIPv4 } from "../net/ipv4.js";
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

/**
 * The pod's IPv4 address on `ifname`. Most main plugins (bridge, ptp, macvlan, ipvlan) tie each
 * IP to an interface index; when none of the IPs carries one, the first IPv4 is the pod's.
 */
export function podAddress(prevResult: unknown, ifname: string): PodAddress {
  for (const ip of podIPs(prevResult, ifname)) {
    const cidr = parseCidr(ip.address, false);
    const slash = ip.address.indexOf("/");
    if (cidr && parseIPv4(ip.address.slice(0, slash)) !== undefined) {
      return { ip: ip.address.slice(0, slash), prefix: cidr.prefix };
    }
  }
  throw invalid(
    `prevResult has no IPv4 address on interface ${ifname} in the container (tenant-egress tunnels IPv4; check that the main plugin assigns ${ifname} an IPv4 address)`,
  );
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
    ipv4: addrs.filter((a) => isIPv4(a)),
    ipv6: addrs.filter((a) => isIPv6(a)),
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
