/**
 * Which gateway (and so which tenant) a pod uses. Sources, first match wins, in the order a
 * runtime lets an operator be more specific: the pod's own annotation (containerd and CRI-O pass
 * annotations through the io.kubernetes.cri.pod-annotations capability), the conflist's args,
 * CNI_ARGS, the namespace→tenant map, the conflist default. No source → the pod is not a
 * tenant pod and is left alone.
 *
 * A source may name a gateway IP (the conflist's tunnel defaults apply) or a tenant (its own
 * tunnel settings apply).
 */
import { CniError, ErrorCode } from "../cni/errors.js";
import { explainNotIP, type Family, parseIP } from "../net/ip.js";
import { notUnicast } from "../net/schema.js";
import type { PluginConfig, TunnelSettings } from "./config.js";
import { tunnelSettings } from "./config.js";

export const ANNOTATIONS_CAPABILITY = "io.kubernetes.cri.pod-annotations";
export const ANNOTATION_GATEWAY = "tenant-egress/gateway";
export const ANNOTATION_TENANT = "tenant-egress/tenant";
export const ANNOTATION_OVERLAY_IP = "tenant-egress/overlay-ip";
export const ANNOTATION_OVERLAY_IP6 = "tenant-egress/overlay-ip6";

/** CNI_ARGS keys we read, plus the ones Kubernetes runtimes always send. */
const KNOWN_CNI_ARGS = new Set([
  "IgnoreUnknown",
  "K8S_POD_NAMESPACE",
  "K8S_POD_NAME",
  "K8S_POD_INFRA_CONTAINER_ID",
  "K8S_POD_UID",
  "EGRESS_GATEWAY",
  "EGRESS_TENANT",
  "EGRESS_OVERLAY_IP",
  "EGRESS_OVERLAY_IP6",
]);

export interface Attachment extends TunnelSettings {
  gateway: string;
  tenant?: string;
  /** Where the choice came from, for logs and errors. */
  source: string;
  /** A pinned overlay address, if the runtime args carry one. */
  overlayIP?: string;
  /** The same for the overlay IPv6. */
  overlayIP6?: string;
}

interface Choice {
  gateway?: string;
  tenant?: string;
  overlayIP?: string;
  overlayIP6?: string;
  source: string;
}

const argsError = (msg: string) => new CniError(ErrorCode.InvalidEnvironment, msg);

function str(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

/** Validates CNI_ARGS keys the way libcni's LoadArgs does: unknown keys fail unless IgnoreUnknown. */
export function checkCniArgs(args: Map<string, string>): void {
  const ignore = /^(1|true)$/i.test(args.get("IgnoreUnknown") ?? "");
  if (ignore) return;
  for (const key of args.keys()) {
    if (!KNOWN_CNI_ARGS.has(key))
      throw argsError(`CNI_ARGS key ${JSON.stringify(key)} is unknown (set IgnoreUnknown=1 to pass it through)`);
  }
}

function candidates(config: PluginConfig, cniArgs: Map<string, string>): Choice[] {
  const annotations = (config.runtimeConfig?.[ANNOTATIONS_CAPABILITY] ?? {}) as Record<string, unknown>;
  const argsCni = ((config.args as Record<string, unknown> | undefined)?.cni ?? {}) as Record<string, unknown>;
  const ns = cniArgs.get("K8S_POD_NAMESPACE");
  return [
    {
      gateway: str(annotations[ANNOTATION_GATEWAY]),
      tenant: str(annotations[ANNOTATION_TENANT]),
      overlayIP: str(annotations[ANNOTATION_OVERLAY_IP]),
      overlayIP6: str(annotations[ANNOTATION_OVERLAY_IP6]),
      source: `pod annotation ${ANNOTATION_GATEWAY} or ${ANNOTATION_TENANT}`,
    },
    {
      gateway: str(argsCni.egressGateway),
      tenant: str(argsCni.egressTenant),
      overlayIP: str(argsCni.egressOverlayIP),
      overlayIP6: str(argsCni.egressOverlayIP6),
      source: "args.cni.egressGateway/egressTenant",
    },
    {
      gateway: str(cniArgs.get("EGRESS_GATEWAY")),
      tenant: str(cniArgs.get("EGRESS_TENANT")),
      overlayIP: str(cniArgs.get("EGRESS_OVERLAY_IP")),
      overlayIP6: str(cniArgs.get("EGRESS_OVERLAY_IP6")),
      source: "CNI_ARGS EGRESS_GATEWAY/EGRESS_TENANT",
    },
    { tenant: ns !== undefined ? config.namespaces[ns] : undefined, source: `namespaces["${ns ?? ""}"]` },
    { gateway: config.gateway, source: "gateway in the network configuration" },
  ];
}

/** The pod's attachment, or undefined when nothing selects a gateway for it. */
export function selectGateway(config: PluginConfig, cniArgs: Map<string, string>): Attachment | undefined {
  checkCniArgs(cniArgs);
  const all = candidates(config, cniArgs);
  // A pinned overlay IP may come from any source, even one that does not pick the gateway.
  const pinned = (key: "overlayIP" | "overlayIP6", family: Family, name: string) => {
    const value = all.find((c) => c[key])?.[key];
    if (value !== undefined && parseIP(value, family) === undefined)
      throw argsError(`${name}: ${explainNotIP(value, family)}`);
    return value !== undefined ? { [key]: value } : {};
  };
  const pin = { ...pinned("overlayIP", 4, "EGRESS_OVERLAY_IP"), ...pinned("overlayIP6", 6, "EGRESS_OVERLAY_IP6") };
  const chosen = all.find((c) => c.gateway !== undefined || c.tenant !== undefined);
  if (!chosen) return undefined;
  if (chosen.tenant !== undefined && chosen.gateway === undefined) {
    const t = config.tenants[chosen.tenant];
    if (!t)
      throw argsError(
        `${chosen.source}: tenant ${JSON.stringify(chosen.tenant)} is not defined in the network configuration's tenants`,
      );
    return {
      ...tunnelSettings({ ...t }, `tenants.${chosen.tenant}.`, config),
      gateway: t.gateway,
      tenant: chosen.tenant,
      source: chosen.source,
      ...pin,
    };
  }
  const gateway = chosen.gateway as string;
  const wrong = notUnicast(gateway);
  if (wrong) throw argsError(`${chosen.source}: ${wrong}`);
  return { ...config.defaults, gateway, source: chosen.source, ...pin };
}
