/**
 * Names of what one attachment owns, derived from CNI_IFNAME (inside the pod: one attachment
 * per interface) and from the container ID (on the node, where every pod's rules live side by
 * side). Derived, never stored: DEL and GC find them again from the same inputs.
 */

/** 32-bit FNV-1a as 8 hex digits: short stable names (node:crypto costs ~5 ms to load). */
export function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** Inside the pod namespace, where an interface name is one attachment's (CNI_IFNAME is unique there). */
export function names(ifname: string) {
  const suffix = ifname.length <= 12 ? ifname : `h${fnv1a(ifname)}`;
  return {
    device: `te-${suffix}`,
    markChain: `TE-MARK-${ifname}`,
    mssChain: `TE-MSS-${ifname}`,
    snatChain: `TE-SNAT-${ifname}`,
  };
}

/** On the node: the one nftables table (netdev family) holding every attachment's enforcement chain. */
export const ENFORCE_TABLE = "tenant-egress";

/**
 * On the node: the enforcement chain of one attachment — network name, container ID and
 * interface, hashed as the reference plugins name their per-attachment chains — and the comment
 * that names its owner, so GC can tell its own network's chains from another network's.
 */
export function enforceNames(network: string, containerId: string, ifname: string) {
  return {
    chain: `te-${fnv1a(`${network}/${containerId}`)}${fnv1a(`${network}/${containerId}/${ifname}`)}`,
    comment: enforceOwner(network, containerId, ifname),
  };
}

export const enforceOwner = (network: string, containerId: string, ifname: string) =>
  `tenant-egress:${network}:${containerId}/${ifname}`;
