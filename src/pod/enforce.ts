/**
 * Enforcement on the node: a tenant pod with CAP_NET_ADMIN (docker-in-docker runners are often
 * privileged) can do anything inside its own namespace — flush its rules, add or change
 * addresses, change its MAC, send raw frames, build its own tunnels. So the rules key on what it
 * cannot change: the host side of its attachment (the peer of its veth, in the node's
 * namespace). They hook that port's ingress in an nftables netdev-family table, because with a
 * bridge main plugin the routed packet reaches FORWARD as `-i cni0` and iptables cannot tell
 * ports apart; ingress works the same for bridge and ptp and needs neither br_netfilter nor a
 * sysctl. From that port, only:
 *   - frames from the pod's own MAC, ARP for its own IPv4 addresses;
 *   - IPv4 from its own addresses: VXLAN to its own gateway with its own VNI; other VXLAN is
 *     dropped (no borrowing another tenant's VNI or gateway); private destinations (the same
 *     exclusions as inside the pod) pass; everything else — public — is dropped;
 *   - IPv6 from its own, link-local or unspecified addresses, to link-local, link-scope
 *     multicast (neighbour discovery), fc00::/7 and the IPv6 `excludeCIDRs` only: public IPv6
 *     leaves the pod inside its tunnel (IPv4 VXLAN, above) or not at all.
 * Every other frame is dropped by the chain's policy. One base chain per attachment (each
 * netdev chain hooks its own device) in one shared table, named from the network, container ID
 * and interface; its comment names the owner for GC.
 */
import { CniError, ErrorCode } from "../cni/errors.js";
import type { PodIdentity } from "../cni/result.js";
import type { NetState, Scope } from "../net/desired-state.js";
import { stateOf } from "../net/desired-state.js";
import { cidrContains, formatCidr, parseCidr } from "../net/ip.js";
import type { Interface } from "../net/observe.js";
import { nftVniMatch } from "../net/vxlan.js";
import type { PluginConfig } from "./config.js";
import { exclusions } from "./config.js";
import { ENFORCE_TABLE, enforceNames, enforceOwner } from "./names.js";
import type { Attachment } from "./select-gateway.js";

/** Before anything else that might hook the same port. */
export const ENFORCE_PRIORITY = -500;

/** IPv6 a pod always reaches directly: link-local, link-scope multicast, unique local (plus the IPv6 excludeCIDRs). */
const IPV6_DIRECT = ["fe80::/10", "ff02::/16", "fc00::/7"];

export interface EnforcedPod {
  network: string;
  containerId: string;
  ifname: string;
  /** What the pod owns, from prevResult; the MAC falls back to the interface as ADD found it. */
  identity: PodIdentity & { mac: string };
  /** The host side of the attachment in the node's namespace. */
  hostDevice: string;
}

/** Exclusions without the ones another covers: nft's interval sets reject overlaps. */
function disjoint(cidrs: string[]): string[] {
  const parsed = cidrs.filter((c, i) => cidrs.indexOf(c) === i).map((c) => ({ text: c, cidr: parseCidr(c)! }));
  return parsed
    .filter((p) => !parsed.some((q) => q.cidr.prefix < p.cidr.prefix && cidrContains(q.cidr, p.cidr.network)))
    .map((p) => p.text);
}

const set = (items: string[]) => `{ ${items.join(", ")} }`;

/**
 * The IPv6 a pod reaches directly through its port: IPV6_DIRECT and the configured IPv6
 * exclusions (not all of the built-ins: of multicast only the link scope, of loopback nothing,
 * since neither has any business leaving the pod).
 */
const direct6 = (config: PluginConfig) =>
  disjoint([
    ...IPV6_DIRECT,
    ...config.excludeCIDRs.flatMap((c) => {
      const cidr = parseCidr(c);
      return cidr?.family === 6 ? [formatCidr(cidr)] : [];
    }),
  ]);

export function planEnforcement(config: PluginConfig, a: Attachment, p: EnforcedPod): NetState {
  const n = enforceNames(p.network, p.containerId, p.ifname);
  const { ipv4, ipv6, mac } = p.identity;
  const rules = [
    `ether saddr != ${mac} drop`,
    `arp saddr ether ${mac} arp saddr ip ${set(["0.0.0.0", ...ipv4])} accept`,
    `ip saddr != ${set(ipv4)} drop`,
    `ip daddr ${a.gateway} udp dport ${a.port} ${nftVniMatch(a.vni)} accept`,
    `udp dport ${a.port} drop`,
    `ip daddr ${set(disjoint(exclusions(config)))} accept`,
    `ip6 saddr != ${set(["::", "fe80::/10", ...ipv6])} drop`,
    `ip6 daddr ${set(direct6(config))} accept`,
  ];
  return stateOf({
    nftChains: [
      {
        family: "netdev",
        table: ENFORCE_TABLE,
        name: n.chain,
        hook: "ingress",
        device: p.hostDevice,
        priority: ENFORCE_PRIORITY,
        policy: "drop",
        comment: n.comment,
        rules,
      },
    ],
  });
}

/** A device name as the kernel allows it, and safe inside an nft string. */
const DEVICE = /^[A-Za-z0-9_.:@-]{1,15}$/;

/**
 * The host side of the pod's `ifname`: the node's veth whose peer it is (each one's ifindex is
 * the other's link index). Found from the kernel, not from prevResult, so it holds for any
 * veth-based main plugin; none found means enforcement cannot work here, and ADD says so.
 */
export function hostSide(podLinks: Interface[], nodeVeths: Interface[], ifname: string): string {
  const inPod = podLinks.find((l) => l.name === ifname);
  const peer = inPod?.peer?.elsewhere
    ? nodeVeths.find((v) => v.ifindex === inPod.peer!.ifindex && v.peer?.ifindex === inPod.ifindex)
    : undefined;
  if (!peer || !DEVICE.test(peer.name)) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `enforce: no veth in the node's network namespace is the peer of ${ifname} in the container (ifindex ${inPod?.ifindex ?? "?"}, peer index ${inPod?.peer?.ifindex ?? "none"}); enforcement hooks the host side of a veth attachment (main plugins bridge, ptp) and cannot be effective here`,
    );
  }
  return peer.name;
}

/** Only the given enforcement chains. */
export function enforcementScope(chains: ReadonlySet<string>): Scope {
  return { nftChain: (table, chain) => table === ENFORCE_TABLE && chains.has(chain) };
}

/** This network's enforcement chains on the node whose attachment is not in `valid` (GC's "stale"). */
export function staleEnforcement(
  observed: NetState,
  network: string,
  valid: ReadonlyArray<{ containerID: string; ifname: string }>,
): Set<string> {
  const keep = new Set(valid.map((v) => enforceOwner(network, v.containerID, v.ifname)));
  const ours = enforceOwner(network, "", "").slice(0, -1);
  const stale = new Set<string>();
  for (const ch of observed.nftChains)
    if (ch.table === ENFORCE_TABLE && ch.comment.startsWith(ours) && !keep.has(ch.comment)) stale.add(ch.name);
  return stale;
}
