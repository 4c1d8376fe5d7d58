/**
 * Validators both halves share (addresses and CIDRs of either family, VNIs, ports), as zod/mini
 * schemas whose messages say what a valid value looks like. zod/mini rather than zod: the same
 * validator, tree-shaken to ~12 KB; the full build adds ~50 ms to every plugin start (measured
 * on a bundled one-schema program: 80 vs 30 ms).
 */
import * as z from "zod/mini";
import { explainNotCidr, explainNotIP, type Family, parseCidr, parseIP } from "./ip.js";

const address = (family: Family) =>
  z
    .string()
    .check(z.refine((s) => parseIP(s, family) !== undefined, { error: (i) => explainNotIP(String(i.input), family) }));

export const ipv4 = address(4);
export const ipv6 = address(6);

/** Why `ip` cannot be a tunnel endpoint (a gateway): "" when it can. */
export function notUnicast(ip: string): string {
  const a = parseIP(ip, 4);
  if (a === undefined) return explainNotIP(ip, 4);
  const first = Number(a >> 24n);
  if (a === 0n) return `${ip} is the unspecified address`;
  if (first === 127) return `${ip} is a loopback address`;
  if (first >= 224) return `${ip} is a multicast or reserved address`;
  return "";
}

/** A unicast IPv4 address a tunnel can be pointed at (the underlay is IPv4). */
export const unicastIPv4 = z
  .string()
  .check(z.refine((s) => notUnicast(s) === "", { error: (i) => notUnicast(String(i.input)) }));

const cidrOf = (family?: Family) =>
  z.string().check(
    z.refine((s) => parseCidr(s, true, family) !== undefined, {
      error: (i) => explainNotCidr(String(i.input), family),
    }),
  );

/** A CIDR of either family, host bits zero. */
export const cidr = cidrOf();
export const cidr4 = cidrOf(4);
export const cidr6 = cidrOf(6);

export const intIn = (min: number, max: number, what: string) =>
  z.int().check(z.minimum(min, { error: what }), z.maximum(max, { error: what }));
export const vni = intIn(1, 16777215, "a VXLAN VNI is 1-16777215");
export const port = intIn(1, 65535, "a UDP port is 1-65535");
