/**
 * The lab's tenants, written once for both halves. A test or the demo describes a tenant by
 * name, VNI, overlay subnet and rates; the gateway's file entry, the plugin conflist's
 * `egress.tenants` map, the cluster tenants file's entry (the same tenant with its `tunnel`) and
 * the pods attached to it all derive from that one description, so a pod test and a gateway test
 * cannot disagree about which VNI or overlay a tenant uses, and the defaults a test does not care
 * about (the lab's pod subnet as the allowed source, 20 Mbit/s each way) are the same everywhere.
 */
import { cni, type Network } from "./cni-client.js";
import { type Lab, POD_SUBNET } from "./topology.js";

/** A direction's limit as the gateway's file writes it. */
export interface Limit {
  rate: string;
  ceil?: string;
}

/** A tenant as the gateway's file holds it. */
export interface LabTenant {
  name: string;
  vni: number;
  overlaySubnet: string;
  allowedSources: string[];
  upload: Limit;
  download: Limit;
}

export interface TenantOptions {
  upload?: string | Limit;
  download?: string | Limit;
  allowedSources?: string[];
}

const limit = (l: string | Limit | undefined): Limit =>
  typeof l === "string" ? { rate: l } : (l ?? { rate: "20mbit" });

export function labTenant(name: string, vni: number, overlaySubnet: string, o: TenantOptions = {}): LabTenant {
  return {
    name,
    vni,
    overlaySubnet,
    allowedSources: o.allowedSources ?? [POD_SUBNET],
    upload: limit(o.upload),
    download: limit(o.download),
  };
}

/** The plugin conflist's `egress.tenants`: each tenant's tunnel, served by the gateway at `gateway`. */
export function pluginTenants(
  gateway: string,
  tenants: readonly LabTenant[],
): Record<string, { gateway: string; vni: number; overlaySubnet: string }> {
  return Object.fromEntries(
    tenants.map((t) => [t.name, { gateway, vni: t.vni, overlaySubnet: t.overlaySubnet }] as const),
  );
}

/** The tenant as the cluster's tenants file writes it for both halves: the gateway's entry with its tunnel. */
export function clusterTenant(t: LabTenant, gateway: string, extra: Record<string, unknown> = {}) {
  const { vni, overlaySubnet, ...rest } = t;
  return { ...rest, tunnel: { gateway, vni, overlaySubnet }, ...extra };
}

/**
 * One pod per tenant on node A, attached through `network` with the tenant in CNI_ARGS; the pod
 * namespaces by tenant, named after it (after `tag`-, where one lab attaches several sets).
 */
export async function attachTenantPods(
  lab: Lab,
  network: Network,
  tenants: readonly LabTenant[],
  tag?: string,
): Promise<Record<string, string>> {
  const pods: Record<string, string> = {};
  for (const t of tenants) {
    pods[t.name] = await lab.addPodNamespace(tag ? `${tag}-${t.name}` : t.name);
    await cni("add", {
      node: lab.ns.nodeA,
      network,
      pod: pods[t.name]!,
      cniArgs: `IgnoreUnknown=1;EGRESS_TENANT=${t.name}`,
    });
  }
  return pods;
}
