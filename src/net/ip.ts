/**
 * IPv4 and IPv6 addresses and CIDRs, for both halves: strict parsing, containment, host bits
 * and the canonical text `ip` and iptables print.
 *
 * Parsing is strict: a literal must pass node's inet_pton-style check for IPv4 (which refuses
 * "010.1.1.1" and "1.2.3") or IPv6's grammar here (hex groups and at most one "::"; no zone id
 * "fe80::1%eth0" and no dotted tail "::ffff:1.2.3.4", forms a config must never be
 * reinterpreted from). The grammar is checked here rather than with node:net's isIPv6, whose one
 * large regular expression costs the plugin tens of milliseconds to compile on every invocation.
 * Values, networks, containment and overlap are then bigint arithmetic on the checked literal.
 * IPv6's canonical text is RFC 5952's (what `ip` and ip6tables print), formatted here too. The
 * libraries once used for this carried their own big-integer code (jsbn, printed through
 * sprintf): ip-cidr's ranges made a gateway with 50 tenants spend 2.5 s of a 3 s no-op reconcile
 * checking its configuration's overlays pairwise, in the V8 lite mode the daemon runs in, and
 * loading ip-address for the text alone cost every pod's ADD a few milliseconds. Error messages
 * quote the input as JSON: it may carry newlines and control characters.
 */
import { isIPv4 } from "node:net";

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
  return literalValue(text, f);
}

/** The value of a literal already known to be strict: octets, or hex groups with "::" filled by zero groups. */
function literalValue(text: string, f: Family): bigint {
  if (f === 4) return text.split(".").reduce((v, octet) => (v << 8n) | BigInt(octet), 0n);
  const [head = "", tail] = text.split("::") as [string, string | undefined];
  const split = (t: string) => (t === "" ? [] : t.split(":"));
  const front = split(head);
  const back = tail === undefined ? [] : split(tail);
  const zeros = tail === undefined ? [] : Array<string>(8 - front.length - back.length).fill("0");
  return [...front, ...zeros, ...back].reduce((v, g) => (v << 16n) | BigInt(`0x${g}`), 0n);
}

/** The canonical text of an address: dotted quad, or RFC 5952 (what `ip` and ip6tables print). */
export function formatIP(family: Family, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((shift) => Number((value >> shift) & 255n)).join(".");
  const hex = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((shift) => Number((value >> shift) & 0xffffn).toString(16));
  // RFC 5952: the longest run of two or more zero groups (the first of equals) becomes "::".
  let best = { at: -1, length: 1 };
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && hex[j] === "0") j++;
    if (j - i > best.length) best = { at: i, length: j - i };
    i = j > i ? j : i + 1;
  }
  if (best.at < 0) return hex.join(":");
  return `${hex.slice(0, best.at).join(":")}::${hex.slice(best.at + best.length).join(":")}`;
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
  const value = literalValue(text.slice(0, slash), f);
  const network = value & ~((1n << BigInt(BITS[f] - Number(prefixText))) - 1n);
  if (strict && network !== value) return undefined;
  return { family: f, network, prefix: Number(prefixText) };
}

export function formatCidr(c: Cidr): string {
  return `${formatIP(c.family, c.network)}/${c.prefix}`;
}

/** The host bits of a prefix of `c`'s length, as a mask. */
const hostMask = (c: Cidr) => (1n << BigInt(BITS[c.family] - c.prefix)) - 1n;

/** Whether address `addr` (text or integer of the CIDR's family) lies inside `c`. */
export function cidrContains(c: Cidr, addr: string | bigint): boolean {
  const value = typeof addr === "bigint" ? addr : parseIP(addr, c.family);
  return value !== undefined && (value & ~hostMask(c)) === c.network;
}

/** Whether two CIDRs share any address: the shorter prefix contains the other's network. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && (cidrContains(a, b.network) || cidrContains(b, a.network));
}

/** The last address of a prefix (IPv4's broadcast). */
export function lastAddress(c: Cidr): bigint {
  return c.network | hostMask(c);
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
