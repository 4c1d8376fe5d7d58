/**
 * The gateway's declarative configuration: which tenants it serves and what each may use. It is
 * validated whole before anything changes, and every error names the field (tenants[1].upload.ceil)
 * and what would be valid, because the person reading it is an operator editing a file.
 */
import { readFile } from "node:fs/promises";
import * as z from "zod/mini";
import { cidrsOverlap, firstHost, formatIP, isHostOf, parseCidr, parseIP } from "../net/ip.js";
import { formatRate, parseRate, parseSize } from "../net/rates.js";
import { cidr4, cidr6, ipv4, ipv6, port, vni } from "../net/schema.js";
import { defaultOverlaySubnet6 } from "../net/vxlan.js";
import { HaSchema, type HaSettings, HaSettingsError, requireEgressAddresses, resolveHa } from "./ha/settings.js";

export class GatewayConfigError extends Error {}

const rate = z.string().check(
  z.refine((s) => parseRate(s) !== undefined, {
    error: (i) => `"${String(i.input)}" is not a rate with a tc unit (like "10mbit", "1gbit", "500kbit")`,
  }),
);
const size = z.string().check(
  z.refine((s) => parseSize(s) !== undefined, {
    error: (i) => `"${String(i.input)}" is not a size with a tc unit (like "15k", "1600b")`,
  }),
);
const ifname = z.string().check(z.regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/, { error: "not an interface name" }));

const Limit = z.strictObject({ rate, ceil: z.optional(rate), burst: z.optional(size) });

const Tenant = z.strictObject({
  name: z
    .string()
    .check(
      z.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, { error: "tenant names are 1-63 letters, digits, '_', '.', '-'" }),
    ),
  vni,
  vxlanPort: z._default(port, 4789),
  overlaySubnet: cidr4,
  gatewayOverlayIP: z.optional(ipv4),
  /** Default: the ULA /48 the plugin derives from the VNI too. */
  overlaySubnet6: z.optional(cidr6),
  gatewayOverlayIP6: z.optional(ipv6),
  allowedSources: z
    .array(cidr4)
    .check(z.minLength(1, { error: "list the underlay CIDRs this tenant's pods send from" })),
  snat: z._default(z.union([z.literal("masquerade"), ipv4]), "masquerade"),
  snat6: z._default(z.union([z.literal("masquerade"), ipv6]), "masquerade"),
  upload: Limit,
  download: Limit,
});

const Schema = z.strictObject({
  uplink: z.optional(ifname),
  linkRate: z.optional(rate),
  /** An active/standby pair (README "High availability"); absent: a single gateway. */
  ha: z.optional(HaSchema),
  tenants: z.array(Tenant),
});

export interface Shape {
  /** bits/s */
  rate: number;
  ceil: number;
  /** bytes, when the file sets one */
  burst?: number;
}

export interface GatewayTenant {
  name: string;
  vni: number;
  port: number;
  overlaySubnet: string;
  overlayPrefix: number;
  gatewayOverlayIP: string;
  overlaySubnet6: string;
  overlayPrefix6: number;
  gatewayOverlayIP6: string;
  allowedSources: string[];
  snat: "masquerade" | string;
  /** "masquerade" (the uplink's IPv6) or an IPv6 address to SNAT the tenant's IPv6 to. */
  snat6: "masquerade" | string;
  upload: Shape;
  download: Shape;
  /** HTB class minor on the uplink (upload) and on the tunnel (download). */
  classMinor: number;
}

export interface GatewayConfig {
  uplink?: string;
  /** bits/s: the capacity every guaranteed rate must fit into. */
  linkRate: number;
  linkRateGiven: boolean;
  tenants: GatewayTenant[];
  ha?: HaSettings;
}

/** Without linkRate the root class does not shape; it only bounds ceilings. */
export const UNBOUNDED_LINK = 10e9;
/** Minors below this are the gateway's own classes (root, default, tunnel). */
export const FIRST_TENANT_MINOR = 0x10;

/** A stable class minor per VNI: the same tenant keeps its class across applies. */
export function classMinorOf(vniValue: number): number {
  return FIRST_TENANT_MINOR + ((vniValue - 1) % (0xffff - FIRST_TENANT_MINOR));
}

/** The rate reserved for traffic of no tenant (the gateway's own, ARP, IPv6): small, never zero. */
export function defaultClassRate(linkRate: number): number {
  return Math.min(1e6, Math.floor(linkRate / 100));
}

function shape(l: z.infer<typeof Limit>, where: string, linkRate: number): Shape {
  const r = parseRate(l.rate)!;
  const c = l.ceil !== undefined ? parseRate(l.ceil)! : r;
  if (c < r)
    throw new GatewayConfigError(
      `${where}.ceil: ${l.ceil} is below rate ${l.rate} (ceil is the cap, rate the guarantee)`,
    );
  if (c > linkRate)
    throw new GatewayConfigError(`${where}.ceil: ${formatRate(c)} is above linkRate ${formatRate(linkRate)}`);
  const burst = l.burst !== undefined ? parseSize(l.burst)! : undefined;
  if (burst !== undefined && burst < 1514)
    throw new GatewayConfigError(`${where}.burst: ${l.burst} is smaller than one frame (1514 bytes)`);
  return { rate: r, ceil: c, ...(burst !== undefined ? { burst } : {}) };
}

export function parseGatewayConfig(input: unknown): GatewayConfig {
  const parsed = Schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where =
      issue.path
        .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
        .join("")
        .replace(/^\./, "") || "(top level)";
    if (issue.code === "unrecognized_keys")
      throw new GatewayConfigError(`${where}: unknown key ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`);
    throw new GatewayConfigError(`${where}: ${issue.message}`);
  }
  const raw = parsed.data;
  const linkRate = raw.linkRate !== undefined ? parseRate(raw.linkRate)! : UNBOUNDED_LINK;
  const seen = { names: new Map<string, number>(), vnis: new Map<number, number>(), minors: new Map<number, number>() };
  const tenants = raw.tenants.map((t, i): GatewayTenant => {
    const at = `tenants[${i}]`;
    const dup = (map: Map<string | number, number>, key: string | number, what: string) => {
      const other = map.get(key);
      if (other !== undefined) throw new GatewayConfigError(`${at}.${what}: ${key} is also used by tenants[${other}]`);
      map.set(key, i);
    };
    dup(seen.names, t.name, "name");
    dup(seen.vnis, t.vni, "vni");
    const classMinor = classMinorOf(t.vni);
    const clash = seen.minors.get(classMinor);
    if (clash !== undefined)
      throw new GatewayConfigError(
        `${at}.vni: ${t.vni} maps to the same traffic class as tenants[${clash}].vni; pick another VNI`,
      );
    seen.minors.set(classMinor, i);
    const subnet = parseCidr(t.overlaySubnet)!;
    if (subnet.prefix < 16 || subnet.prefix > 30)
      throw new GatewayConfigError(`${at}.overlaySubnet: ${t.overlaySubnet} must be /16 to /30`);
    const gw = t.gatewayOverlayIP ?? formatIP(4, firstHost(subnet));
    if (!isHostOf(subnet, parseIP(gw, 4)!)) {
      throw new GatewayConfigError(`${at}.gatewayOverlayIP: ${gw} is not a host address inside ${t.overlaySubnet}`);
    }
    const subnet6Text = t.overlaySubnet6 ?? defaultOverlaySubnet6(t.vni);
    const subnet6 = parseCidr(subnet6Text)!;
    if (subnet6.prefix > 126)
      throw new GatewayConfigError(`${at}.overlaySubnet6: ${subnet6Text} has no room for pods (at most /126)`);
    const gw6 = formatIP(6, t.gatewayOverlayIP6 !== undefined ? parseIP(t.gatewayOverlayIP6, 6)! : firstHost(subnet6));
    if (!isHostOf(subnet6, parseIP(gw6, 6)!))
      throw new GatewayConfigError(`${at}.gatewayOverlayIP6: ${gw6} is not a host address inside ${subnet6Text}`);
    return {
      name: t.name,
      vni: t.vni,
      port: t.vxlanPort,
      overlaySubnet: t.overlaySubnet,
      overlayPrefix: subnet.prefix,
      gatewayOverlayIP: gw,
      overlaySubnet6: subnet6Text,
      overlayPrefix6: subnet6.prefix,
      gatewayOverlayIP6: gw6,
      allowedSources: t.allowedSources,
      snat: t.snat,
      snat6: t.snat6 === "masquerade" ? t.snat6 : formatIP(6, parseIP(t.snat6, 6)!),
      upload: shape(t.upload, `${at}.upload`, linkRate),
      download: shape(t.download, `${at}.download`, linkRate),
      classMinor,
    };
  });
  for (let i = 0; i < tenants.length; i++) {
    for (let j = 0; j < i; j++) {
      for (const key of ["overlaySubnet", "overlaySubnet6"] as const) {
        // Each is a connected route on its tenant's tunnel: overlapping ones would send one tenant's replies into the other's.
        if (cidrsOverlap(parseCidr(tenants[i]![key])!, parseCidr(tenants[j]![key])!)) {
          throw new GatewayConfigError(
            `tenants[${i}].${key}: ${tenants[i]![key]} overlaps tenants[${j}].${key} ${tenants[j]![key]}`,
          );
        }
      }
    }
  }
  // linkRate is the uplink's capacity in each direction: uploads must fit in it, and so must
  // downloads. A one-armed gateway sends re-encapsulated downloads out the same uplink, so when
  // both directions saturate at once HTB shares the root between them in proportion to their
  // guaranteed rates (README: "What each limit counts"). The default class's 1 % is on top: a
  // link filled exactly by guarantees still gives traffic of no tenant a trickle.
  if (raw.linkRate !== undefined) {
    for (const dir of ["upload", "download"] as const) {
      const total = tenants.reduce((sum, t) => sum + t[dir].rate, 0);
      if (total > linkRate) {
        throw new GatewayConfigError(
          `linkRate: the guaranteed ${dir} rates add up to ${formatRate(total)}, more than linkRate ${raw.linkRate}; lower some rates (ceil may stay high)`,
        );
      }
    }
  }
  let ha: HaSettings | undefined;
  try {
    if (raw.ha) {
      ha = resolveHa(raw.ha);
      requireEgressAddresses(tenants);
    }
  } catch (e) {
    if (e instanceof HaSettingsError) throw new GatewayConfigError(e.message);
    throw e;
  }
  return {
    ...(raw.uplink ? { uplink: raw.uplink } : {}),
    linkRate,
    linkRateGiven: raw.linkRate !== undefined,
    tenants,
    ...(ha ? { ha } : {}),
  };
}

/** Reads and validates a configuration file; every failure is a GatewayConfigError naming the file or the field. */
export async function readGatewayConfig(
  file: string,
  parse: (json: unknown) => GatewayConfig = parseGatewayConfig,
): Promise<GatewayConfig> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, "utf8"));
  } catch (e) {
    throw new GatewayConfigError(`cannot read ${file} as JSON: ${(e as Error).message}`);
  }
  return parse(json);
}
