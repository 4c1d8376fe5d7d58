/**
 * IPv4 and IPv6 addresses and CIDRs, for both halves: strict parsing, containment, host bits
 * and the canonical text `ip` and iptables print.
 *
 * The math (network and last address of a prefix, containment, conversion between text and
 * integers) is `ip-cidr`'s, the project's chosen CIDR library, because it covers both families.
 * Parsing stays strict on top of it: ip-cidr (through ip-address) accepts forms a config must
 * never be reinterpreted from — an IPv4-mapped "::ffff:1.2.3.4" becomes 1.2.3.4, a zone id
 * "fe80::1%eth0" is taken — so a literal must first pass node's own inet_pton-style check
 * (which also refuses "010.1.1.1" and "1.2.3"), and IPv6 literals with a zone id or a dotted
 * tail are refused. IPv6 is checked here by its grammar (hex groups and one "::"), the same
 * forms node:net's isIPv6 accepts without those two: its one large regular expression costs
 * the plugin tens of milliseconds to compile on every invocation, for one address. Error messages quote the input as JSON: it may carry newlines and
 * control characters.
 */
import { isIPv4 } from "node:net";
import { Address4, Address6 } from "ip-address";
import IPCIDR from "ip-cidr";

export type Family = 4 | 6;

export interface Cidr {
  readonly family: Family;
  /** Network address (host bits cleared). */
  readonly network: bigint;
  readonly prefix: number;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

const GROUP = /^[0-9a-fA-F]{1,4}$/;

/** 1-4 hex digits per group, separated by single colons; an empty text has none. */
function groups(text: string): number | undefined {
  if (text === "") return 0;
  const parts = text.split(":");
  return parts.every((p) => GROUP.test(p)) ? parts.length : undefined;
}

/** Eight groups, or fewer around one "::" that stands for at least one zero group. */
function isStrictIPv6(text: string): boolean {
  const halves = text.split("::");
  if (halves.length > 2) return false;
  const counts = halves.map(groups);
  if (counts.some((c) => c === undefined)) return false;
  const total = (counts as number[]).reduce((a, b) => a + b, 0);
  return halves.length === 1 ? total === 8 : total <= 7;
}

/** The family of a strictly written address literal, or undefined. */
export function familyOf(text: string): Family | undefined {
  if (isIPv4(text)) return 4;
  if (isStrictIPv6(text)) return 6;
  return undefined;
}

/** An address as an integer; undefined unless `text` is a strict literal (of `family`, if given). */
export function parseIP(text: string, family?: Family): bigint | undefined {
  const f = familyOf(text);
  if (f === undefined || (family !== undefined && f !== family)) return undefined;
  return IPCIDR.formatIP<bigint>(IPCIDR.createAddress(text), { type: "bigInteger" });
}

/** The canonical text of an address: dotted quad, or RFC 5952 (what `ip` and ip6tables print). */
export function formatIP(family: Family, value: bigint): string {
  // ip-address (ip-cidr's own engine) converts from its BigInteger through toString(), which a bigint has too.
  const from = (family === 4 ? Address4 : Address6).fromBigInteger as (v: unknown) => Address4 | Address6;
  return from(value).correctForm();
}

/** The canonical text of an address literal, or undefined when it is none. */
export function canonicalIP(text: string): string | undefined {
  const f = familyOf(text);
  const v = f && parseIP(text, f);
  return f && v !== undefined ? formatIP(f, v) : undefined;
}

/**
 * Parses "addr/n" of either family (or only `family`). With `strict`, host bits must be zero (a
 * config CIDR with host bits set is almost always a typo for an address); otherwise they are cleared.
 */
export function parseCidr(text: string, strict = true, family?: Family): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const f = familyOf(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (f === undefined || (family !== undefined && f !== family)) return undefined;
  if (!/^(0|[1-9]\d{0,2})$/.test(prefixText) || Number(prefixText) > BITS[f]) return undefined;
  const range = new IPCIDR(text);
  const network = range.start<bigint>({ type: "bigInteger" });
  if (strict && network !== parseIP(text.slice(0, slash), f)) return undefined;
  return { family: f, network, prefix: Number(prefixText) };
}

export function formatCidr(c: Cidr): string {
  return `${formatIP(c.family, c.network)}/${c.prefix}`;
}

function range(c: Cidr): IPCIDR {
  return new IPCIDR(formatCidr(c));
}

/** Whether address `addr` (text or integer of the CIDR's family) lies inside `c`. */
export function cidrContains(c: Cidr, addr: string | bigint): boolean {
  const text = typeof addr === "bigint" ? formatIP(c.family, addr) : addr;
  return familyOf(text) === c.family && range(c).contains(text);
}

/** Whether two CIDRs share any address. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && (cidrContains(a, b.network) || cidrContains(b, a.network));
}

/** The last address of a prefix (IPv4's broadcast). */
export function lastAddress(c: Cidr): bigint {
  return range(c).end<bigint>({ type: "bigInteger" });
}

/** The first usable host of a subnet (network + 1). */
export function firstHost(c: Cidr): bigint {
  return c.prefix >= BITS[c.family] - 1 ? c.network : c.network + 1n;
}

/** `addr`'s host bits relative to a prefix of `c`'s length, placed into `c`. */
export function placeHostBits(c: Cidr, addr: bigint): bigint {
  const hostMask = (1n << BigInt(BITS[c.family] - c.prefix)) - 1n;
  return c.network | (addr & hostMask);
}

/** Whether `addr` is a host address of `c` (not its network address, nor IPv4's broadcast). */
export function isHostOf(c: Cidr, addr: bigint): boolean {
  if (!cidrContains(c, addr)) return false;
  if (c.family === 6) return addr !== c.network || c.prefix === 128;
  return c.prefix >= 31 || (addr !== c.network && addr !== lastAddress(c));
}

const NAME: Record<Family, string> = { 4: "IPv4", 6: "IPv6" };

/** Describes why `text` is not an address of `family`, for error messages. */
export function explainNotIP(text: string, family: Family): string {
  const quoted = JSON.stringify(text);
  const other: Family = family === 4 ? 6 : 4;
  if (familyOf(text) === other) return `${quoted} is an ${NAME[other]} address; an ${NAME[family]} address is needed`;
  if (parseCidr(text, false) !== undefined) return `${quoted} is a CIDR; a single ${NAME[family]} address is needed`;
  return `${quoted} is not an ${NAME[family]} address`;
}

/** Describes why `text` is not a CIDR with host bits zero (of `family`, if given), for error messages. */
export function explainNotCidr(text: string, family?: Family): string {
  const quoted = JSON.stringify(text);
  const loose = parseCidr(text, false);
  const what = family ? `an ${NAME[family]} CIDR` : "a CIDR";
  if (loose && family && loose.family !== family)
    return `${quoted} is an ${NAME[loose.family]} CIDR; ${what} is needed`;
  if (loose) return `${quoted} has host bits set; ${what} needs host bits zero (like ${formatCidr(loose)})`;
  const example = family === 6 ? "fd00::/8" : family === 4 ? "10.0.0.0/8" : "10.0.0.0/8 or fd00::/8";
  return `${quoted} is not ${what} with host bits zero (like ${example})`;
}
