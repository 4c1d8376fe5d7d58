/**
 * The tenants file: what an operator writes once for a whole cluster, mounted (as one
 * ConfigMap) into both the node installer and the gateway. Each tenant is described once — its
 * tunnel, its Kubernetes namespaces, its limits, its egress — and both halves are rendered from
 * the same parsed tunnel spec, so a pod and its gateway cannot disagree on a VNI, a port, an
 * overlay subnet or the gateway's overlay address (the seed configuration's two bugs were
 * exactly such disagreements). What it renders to is the plugin's conflist entry and the
 * gateway's configuration as documented in the README; both renderings are validated by those
 * halves' own parsers, so the file accepts nothing either half would refuse.
 */
import * as z from "zod/mini";
import { type GatewayConfig, GatewayConfigError, parseGatewayConfig } from "../gateway/config.js";
import { canonicalIP, firstHost, formatIP, parseCidr } from "../net/ip.js";
import { cidr, cidr4, cidr6, intIn, ipv4, ipv6, port, unicastIPv4, vni } from "../net/schema.js";
import { defaultOverlaySubnet6 } from "../net/vxlan.js";
import { type PluginConfig, parseConfig } from "../pod/config.js";

export class TenantsFileError extends Error {}

const name = z
  .string()
  .check(
    z.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, { error: "tenant names are 1-63 letters, digits, '_', '.', '-'" }),
  );
const k8sNamespace = z
  .string()
  .check(z.regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, { error: "not a Kubernetes namespace name" }));
// Rates and sizes are checked by the gateway's own parser (with its tc units and messages).
const Limit = z.strictObject({ rate: z.string(), ceil: z.optional(z.string()), burst: z.optional(z.string()) });

const Tunnel = z.strictObject({
  /** The gateway's underlay address: where pods send their VXLAN. */
  gateway: unicastIPv4,
  vni,
  port: z._default(port, 4789),
  overlaySubnet: cidr4,
  gatewayOverlayIP: z.optional(ipv4),
  /** Default: a ULA /48 derived from the VNI (both halves derive the same). */
  overlaySubnet6: z.optional(cidr6),
  gatewayOverlayIP6: z.optional(ipv6),
});

const Tenant = z.strictObject({
  name,
  tunnel: Tunnel,
  namespaces: z._default(z.array(k8sNamespace), []),
  upload: Limit,
  download: Limit,
  snat: z._default(z.union([z.literal("masquerade"), ipv4]), "masquerade"),
  snat6: z._default(z.union([z.literal("masquerade"), ipv6]), "masquerade"),
  allowedSources: z.array(cidr4),
});

const Schema = z.strictObject({
  /** Node-wide settings of the plugin (the conflist entry). */
  plugin: z._default(
    z.strictObject({
      enforce: z._default(z.boolean(), false),
      excludeCIDRs: z._default(z.array(cidr), []),
      routeTable: z.optional(intIn(1, 0xffffffff, "a routing table is 1-4294967295")),
      rulePriority: z.optional(intIn(1, 32765, "a rule priority is 1-32765")),
      mark: z.optional(z.string()),
      mtu: z.optional(intIn(576, 65535, "an IPv4 MTU is 576-65535")),
      /** The tenant of pods nothing else selects; none: such pods are left alone. */
      defaultTenant: z.optional(name),
    }),
    { enforce: false, excludeCIDRs: [] },
  ),
  /** Gateway-wide settings. */
  gateway: z._default(
    z.strictObject({
      uplink: z.optional(z.string()),
      linkRate: z.optional(z.string()),
      /** An active/standby pair; checked by the gateway's own parser. */
      ha: z.optional(z.unknown()),
    }),
    {},
  ),
  tenants: z.array(Tenant),
});

export type TenantsFile = z.infer<typeof Schema>;

function fail(where: string, message: string): never {
  throw new TenantsFileError(`${where}: ${message}`);
}

/** Parses and cross-checks a tenants file; both renderings are validated here, once. */
export function parseTenantsFile(input: unknown): TenantsFile {
  const parsed = Schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.join(".") || "(root)";
    if (issue.code === "unrecognized_keys")
      fail(where, `unknown key ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`);
    fail(where, issue.message);
  }
  const file = parsed.data;
  const names = new Set<string>();
  const owners = new Map<string, string>();
  file.tenants.forEach((t, i) => {
    if (names.has(t.name)) fail(`tenants[${i}].name`, `"${t.name}" is defined twice`);
    names.add(t.name);
    for (const ns of t.namespaces) {
      const other = owners.get(ns);
      if (other) fail(`tenants[${i}].namespaces`, `namespace "${ns}" already belongs to tenant "${other}"`);
      owners.set(ns, t.name);
    }
  });
  // Pods must send to the pair's shared address: an instance's own address stops answering the
  // moment it fails.
  const ha = file.gateway.ha as { vip?: unknown } | undefined;
  const vip = typeof ha?.vip === "string" ? ha.vip.split("/")[0] : undefined;
  file.tenants.forEach((t, i) => {
    if (vip && t.tunnel.gateway !== vip)
      fail(`tenants[${i}].tunnel.gateway`, `${t.tunnel.gateway} is not gateway.ha.vip's address ${vip}`);
  });
  if (file.plugin.defaultTenant && !names.has(file.plugin.defaultTenant))
    fail("plugin.defaultTenant", `tenant "${file.plugin.defaultTenant}" is not defined`);
  // Each half's own parser: their messages name the field as that half sees it.
  try {
    parseConfig(pluginEntry(file));
  } catch (e) {
    fail("as the plugin's conflist entry", (e as Error).message);
  }
  try {
    parseGatewayConfig(gatewayConfigObject(file));
  } catch (e) {
    if (e instanceof GatewayConfigError) fail("as the gateway's configuration", e.message);
    throw e;
  }
  return file;
}

/** A tenant's overlay of both families, resolved once for both halves: the two cannot disagree on a default. */
function overlay(t: TenantsFile["tenants"][number]) {
  const subnet6 = t.tunnel.overlaySubnet6 ?? defaultOverlaySubnet6(t.tunnel.vni);
  const first = (subnet: string) => {
    const c = parseCidr(subnet)!;
    return formatIP(c.family, firstHost(c));
  };
  return {
    overlaySubnet: t.tunnel.overlaySubnet,
    gatewayOverlayIP: t.tunnel.gatewayOverlayIP ?? first(t.tunnel.overlaySubnet),
    overlaySubnet6: subnet6,
    gatewayOverlayIP6: canonicalIP(t.tunnel.gatewayOverlayIP6 ?? first(subnet6)),
  };
}

/** The plugin's conflist entry (the installer appends it to the node's primary network). */
export function pluginEntry(file: TenantsFile): Record<string, unknown> {
  const { defaultTenant, ...settings } = file.plugin;
  const entry: Record<string, unknown> = {
    type: "tenant-egress",
    // Pod annotations reach a chained plugin only when its entry declares the capability.
    capabilities: { "io.kubernetes.cri.pod-annotations": true },
    ...settings,
    tenants: Object.fromEntries(
      file.tenants.map((t) => [
        t.name,
        {
          gateway: t.tunnel.gateway,
          vni: t.tunnel.vni,
          vxlanPort: t.tunnel.port,
          ...overlay(t),
        },
      ]),
    ),
    namespaces: Object.fromEntries(file.tenants.flatMap((t) => t.namespaces.map((ns) => [ns, t.name]))),
  };
  const fallback = file.tenants.find((t) => t.name === defaultTenant);
  if (fallback)
    Object.assign(entry, {
      gateway: fallback.tunnel.gateway,
      vni: fallback.tunnel.vni,
      vxlanPort: fallback.tunnel.port,
      ...overlay(fallback),
    });
  return entry;
}

function gatewayConfigObject(file: TenantsFile): Record<string, unknown> {
  return {
    ...file.gateway,
    tenants: file.tenants.map((t) => ({
      name: t.name,
      vni: t.tunnel.vni,
      vxlanPort: t.tunnel.port,
      ...overlay(t),
      allowedSources: t.allowedSources,
      snat: t.snat,
      snat6: t.snat6,
      upload: t.upload,
      download: t.download,
    })),
  };
}

/**
 * What the gateway executable reads from `-f`: the cluster's tenants file (what the gateway
 * manifest mounts) or a gateway configuration of its own. A tenants file is told apart by its
 * tenants' `tunnel` objects (or a `plugin` section), which a gateway configuration never has.
 */
export function gatewayConfigOf(json: unknown): GatewayConfig {
  if (!isTenantsFile(json)) return parseGatewayConfig(json);
  try {
    return gatewayConfig(parseTenantsFile(json));
  } catch (e) {
    if (e instanceof TenantsFileError) throw new GatewayConfigError(`as a tenants file: ${e.message}`);
    throw e;
  }
}

function isTenantsFile(json: unknown): boolean {
  if (typeof json !== "object" || json === null) return false;
  const o = json as { plugin?: unknown; tenants?: unknown };
  return (
    o.plugin !== undefined ||
    (Array.isArray(o.tenants) && o.tenants.some((t) => typeof t === "object" && t !== null && "tunnel" in t))
  );
}

/** The gateway's configuration from the same tenants. */
export function gatewayConfig(file: TenantsFile): GatewayConfig {
  return parseGatewayConfig(gatewayConfigObject(file));
}

/** The plugin configuration the entry parses to (for tests and for the gateway side's cross-checks). */
export function pluginConfig(file: TenantsFile): PluginConfig {
  return parseConfig(pluginEntry(file));
}
