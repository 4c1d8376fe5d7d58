/**
 * The plugin's network configuration: one entry of a conflist, validated with zod. Every field
 * is checked before anything touches a namespace, and an error names the field and says what a
 * valid value looks like, because the person reading it is an operator editing a conflist.
 */
import * as z from "zod/mini";
import { configError } from "../cni/errors.js";
import { type Cidr, firstHost, formatCidr, formatIP, isHostOf, parseCidr, parseIP } from "../net/ip.js";
import { cidr, cidr4, cidr6, intIn, ipv4, ipv6, port, unicastIPv4, vni } from "../net/schema.js";
import { defaultOverlaySubnet6 } from "../net/vxlan.js";

/** "value/mask" in hex or decimal; value must lie inside the mask so other components' bits are untouched. */
const mark = z.pipe(
  z.string().check(
    z.superRefine((s, ctx) => {
      const m = /^(0x[0-9a-fA-F]{1,8}|\d{1,10})\/(0x[0-9a-fA-F]{1,8}|\d{1,10})$/.exec(s);
      const value = m ? Number(m[1]) : NaN;
      const mask = m ? Number(m[2]) : NaN;
      if (!m || value > 0xffffffff || mask > 0xffffffff)
        ctx.issues.push({ code: "custom", message: `"${s}" is not value/mask (like "0xa/0xff")`, input: s });
      else if (mask === 0 || value === 0)
        ctx.issues.push({ code: "custom", message: "value and mask must be non-zero", input: s });
      else if ((value & ~mask) >>> 0 !== 0)
        ctx.issues.push({ code: "custom", message: `value ${m[1]} has bits outside mask ${m[2]}`, input: s });
    }),
  ),
  // The form `ip rule` and iptables-save print, so observed state compares equal.
  z.transform((s: string) => {
    const [value, mask] = s.split("/").map(Number) as [number, number];
    return `0x${value.toString(16)}/0x${mask.toString(16)}`;
  }),
);

const routeTable = intIn(1, 0xffffffff, "a routing table is 1-4294967295").check(
  z.refine((t) => t < 253 || t > 255, { error: "tables 253-255 are the kernel's default, main and local tables" }),
);

const Tenant = z.strictObject({
  gateway: unicastIPv4,
  vni: z.optional(vni),
  vxlanPort: z.optional(port),
  overlaySubnet: z.optional(cidr4),
  gatewayOverlayIP: z.optional(ipv4),
  overlaySubnet6: z.optional(cidr6),
  gatewayOverlayIP6: z.optional(ipv6),
});

const attachments = z.optional(z.array(z.looseObject({ containerID: z.string(), ifname: z.string() })));

/** Keys every plugin config may carry per the CNI spec and the conventions; never rejected. */
const STANDARD = {
  cniVersion: z.optional(z.string()),
  cniVersions: z.optional(z.array(z.string())),
  // The spec's network name: starts alphanumeric, then alphanumerics, '_', '.', '-'.
  name: z.optional(
    z.string().check(
      z.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/, {
        error: "a network name starts with a letter or digit, then letters, digits, '_', '.', '-' (at most 253)",
      }),
    ),
  ),
  type: z.literal("tenant-egress", { error: 'type must be "tenant-egress"' }),
  args: z.optional(z.record(z.string(), z.unknown())),
  capabilities: z.optional(z.record(z.string(), z.unknown())),
  runtimeConfig: z.optional(z.record(z.string(), z.unknown())),
  prevResult: z.optional(z.unknown()),
  ipam: z.optional(
    z.looseObject({
      type: z.string().check(z.regex(/^[A-Za-z0-9_.-]+$/, { error: "ipam.type must be a plugin file name" })),
    }),
  ),
  dns: z.optional(z.unknown()),
  "cni.dev/valid-attachments": attachments,
  "cni.dev/attachments": attachments,
};

const Schema = z.strictObject({
  ...STANDARD,
  gateway: z.optional(unicastIPv4),
  vni: z._default(vni, 100),
  vxlanPort: z._default(port, 4789),
  overlaySubnet: z._default(cidr4, "172.16.0.0/16"),
  gatewayOverlayIP: z.optional(ipv4),
  overlaySubnet6: z.optional(cidr6),
  gatewayOverlayIP6: z.optional(ipv6),
  routeTable: z._default(routeTable, 200),
  rulePriority: z._default(intIn(1, 32765, "a rule priority is 1-32765 (before the main table's 32766)"), 1000),
  mark: z._default(mark, "0xa/0xff"),
  /** How many tenant-egress attachments one pod may hold: each takes the next table, priority and mark value. */
  attachmentSlots: z._default(intIn(1, 64, "attachmentSlots is 1-64"), 8),
  excludeCIDRs: z._default(z.array(cidr), []),
  enforce: z._default(z.boolean(), false),
  mtu: z.optional(intIn(576, 65535, "an IPv4 MTU is 576-65535")),
  mss: z.optional(intIn(536, 65495, "a TCP MSS is 536-65495")),
  tenants: z._default(
    z.record(
      z
        .string()
        .check(
          z.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, { error: "tenant names are letters, digits, '_', '.', '-'" }),
        ),
      Tenant,
    ),
    {},
  ),
  namespaces: z._default(z.record(z.string(), z.string()), {}),
});

export type RawConfig = z.infer<typeof Schema>;

/** Built-in IPv4 exclusions: never steer private, shared, link-local (cloud metadata), loopback or multicast. */
export const BUILTIN_EXCLUSIONS = [
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "100.64.0.0/10",
  "169.254.0.0/16",
  "127.0.0.0/8",
  "224.0.0.0/4",
];

/** The same for IPv6: loopback, link-local, unique local (the cluster's ULA) and multicast. */
export const BUILTIN_EXCLUSIONS6 = ["::1/128", "fe80::/10", "fc00::/7", "ff00::/8"];

/** Every IPv4 destination a pod reaches directly, never through the tunnel. */
export function exclusions(config: RawConfig): string[] {
  return [...BUILTIN_EXCLUSIONS, ...config.excludeCIDRs.filter((c) => parseCidr(c)?.family === 4)];
}

/** Every IPv6 destination a pod reaches directly, canonical (as ip6tables-save prints them back). */
export function exclusions6(config: RawConfig): string[] {
  return [
    ...BUILTIN_EXCLUSIONS6,
    ...config.excludeCIDRs.flatMap((c) => {
      const cidr = parseCidr(c);
      return cidr?.family === 6 ? [formatCidr(cidr)] : [];
    }),
  ];
}

export interface TunnelSettings {
  vni: number;
  port: number;
  overlaySubnet: Cidr;
  gatewayOverlayIP: string;
  overlaySubnet6: Cidr;
  gatewayOverlayIP6: string;
}

export interface PluginConfig extends RawConfig {
  /** The conflist's own tunnel defaults, resolved. */
  defaults: TunnelSettings;
}

export function parseConfig(input: unknown): PluginConfig {
  const parsed = Schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === "unrecognized_keys") {
      throw configError(
        `unknown configuration key ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}${issue.path.length ? ` in ${issue.path.join(".")}` : ""}`,
        "see the README's configuration reference",
      );
    }
    throw configError(`invalid configuration field ${issue.path.join(".") || "(root)"}: ${issue.message}`);
  }
  const raw = parsed.data;
  if (raw.mtu !== undefined && raw.mss !== undefined && raw.mss > raw.mtu - 40) {
    throw configError(`invalid configuration field mss: ${raw.mss} does not fit in mtu ${raw.mtu} (at most mtu - 40)`);
  }
  for (const [ns, tenant] of Object.entries(raw.namespaces)) {
    if (!raw.tenants[tenant])
      throw configError(`invalid configuration field namespaces.${ns}: tenant "${tenant}" is not defined in tenants`);
  }
  const defaults = tunnelSettings(raw, "", raw);
  for (const [name, t] of Object.entries(raw.tenants)) tunnelSettings(t, `tenants.${name}.`, raw);
  return { ...raw, defaults };
}

/** Resolves and cross-checks one set of tunnel settings (the defaults, or a tenant's overrides). */
export function tunnelSettings(
  t: {
    vni?: number;
    vxlanPort?: number;
    overlaySubnet?: string;
    gatewayOverlayIP?: string;
    overlaySubnet6?: string;
    gatewayOverlayIP6?: string;
  },
  where: string,
  base: RawConfig,
): TunnelSettings {
  const vniValue = t.vni ?? base.vni;
  const v4 = overlay(where, "", t.overlaySubnet, t.gatewayOverlayIP, base.overlaySubnet, base.gatewayOverlayIP, 30);
  // The IPv6 default follows the VNI: a tenant with its own VNI gets its own prefix, and the
  // conflist's gateway address only where the prefix is the conflist's own.
  const base6 = base.overlaySubnet6 ?? defaultOverlaySubnet6(base.vni);
  const own6 = t.overlaySubnet6 ?? (base.overlaySubnet6 ? undefined : defaultOverlaySubnet6(vniValue));
  const v6 = overlay(
    where,
    "6",
    own6 === base6 ? undefined : own6,
    t.gatewayOverlayIP6,
    base6,
    base.gatewayOverlayIP6,
    126,
  );
  return {
    vni: vniValue,
    port: t.vxlanPort ?? base.vxlanPort,
    overlaySubnet: v4.subnet,
    gatewayOverlayIP: v4.gateway,
    overlaySubnet6: v6.subnet,
    gatewayOverlayIP6: v6.gateway,
  };
}

/**
 * One family's overlay: the subnet (a tenant's own, else the conflist's) and the gateway's
 * address in it (a tenant that sets its own subnet does not inherit the conflist's gateway address).
 */
function overlay(
  where: string,
  suffix: "" | "6",
  subnetOwn: string | undefined,
  gatewayOwn: string | undefined,
  subnetBase: string,
  gatewayBase: string | undefined,
  longest: number,
): { subnet: Cidr; gateway: string } {
  const subnetText = subnetOwn ?? subnetBase;
  const subnet = parseCidr(subnetText)!;
  if (subnet.prefix > longest)
    throw configError(
      `invalid configuration field ${where}overlaySubnet${suffix}: ${subnetText} has no room for pods (at most /${longest})`,
    );
  const gwText = gatewayOwn ?? (subnetOwn ? undefined : gatewayBase) ?? formatIP(subnet.family, firstHost(subnet));
  if (!isHostOf(subnet, parseIP(gwText, subnet.family)!)) {
    throw configError(
      `invalid configuration field ${where}gatewayOverlayIP${suffix}: ${gwText} is not a host address inside overlaySubnet${suffix} ${subnetText}`,
    );
  }
  return { subnet, gateway: formatIP(subnet.family, parseIP(gwText)!) };
}
