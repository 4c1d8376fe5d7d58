/**
 * IPv4 addresses and CIDRs as 32-bit integers.
 *
 * Why our own instead of a library: the plugin needs exactly parse, contains, host bits and
 * format, for IPv4 only (the tunnel is IPv4), on the start-up path of every pod operation.
 * Strict parsing matters more than breadth: "010.1.1.1", "1.2.3" or an IPv6 literal must be
 * rejected with a message, never reinterpreted.
 */
import { isIPv6 } from "node:net";

export interface Cidr {
  /** Network address (host bits cleared). */
  readonly network: number;
  readonly prefix: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Parses a dotted-quad IPv4 address; returns undefined for anything else. */
export function parseIPv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIPv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join(".");
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * Parses "a.b.c.d/n". With `strict`, host bits must be zero (a config CIDR with host bits set
 * is almost always a typo for an address); otherwise they are cleared.
 */
export function parseCidr(text: string, strict = true): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const addr = parseIPv4(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (addr === undefined || !/^(3[0-2]|[12]?\d)$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const network = (addr & maskOf(prefix)) >>> 0;
  if (strict && network !== addr) return undefined;
  return { network, prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIPv4(cidr.network)}/${cidr.prefix}`;
}

export function cidrContains(cidr: Cidr, addr: number): boolean {
  return (addr & maskOf(cidr.prefix)) >>> 0 === cidr.network;
}

export function broadcastOf(cidr: Cidr): number {
  return (cidr.network | ~maskOf(cidr.prefix)) >>> 0;
}

/** The first usable host of a subnet (network + 1). */
export function firstHost(cidr: Cidr): number {
  return cidr.prefix >= 31 ? cidr.network : cidr.network + 1;
}

/** Describes why `text` is not an IPv4 address, for error messages. */
export function explainNotIPv4(text: string): string {
  // Quoted as JSON: input may carry newlines and control characters, which a message must not.
  const quoted = JSON.stringify(text);
  if (isIPv6(text)) return `${quoted} is an IPv6 address; an IPv4 address is needed`;
  if (/^[\d.]+\/\d+$/.test(text)) return `${quoted} is a CIDR; a single IPv4 address is needed`;
  return `${quoted} is not an IPv4 address`;
}
