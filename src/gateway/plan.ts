/**
 * The desired state of a gateway namespace: a pure function of the configuration and a few
 * facts about the namespace (its uplink, the uplink's address, which leaf qdiscs the kernel
 * has). `apply` reconciles towards it, `delete --tenant` and `reset` towards nothing within a
 * smaller scope. Per tenant:
 *
 * - a vxlan device `tev<VNI>` that learns pod VTEPs and keeps them for weeks, plus a permanent
 *   neighbour entry for every pod it has learned (pod MACs are derived from their overlay IPs,
 *   so the learned FDB entry says which address the pod has): a server can push to a pod that
 *   has been idle for hours, with no ARP and no FDB expiry. State follows the pods that exist,
 *   not the size of the subnet: the learned FDB entries are facts the plan is given, and a pod
 *   whose FDB entry goes loses its neighbour entry. So do the sources of tracked connections:
 *   conntrack outlives a rebuilt tunnel (whose FDB starts empty), so a pod with open flows keeps
 *   its entry and its replies flow again with its next packet, with no ARP (which a tunnel
 *   without a default destination could not send anyway). A learned MAC that is no derived
 *   MAC of the tenant's overlay breaks the contract between the two halves and is reported;
 *   a pod's overlay IPv6 cannot be read from its MAC, so the gateway has conntrack keep the
 *   pairing (see pairingChain): a pod with open IPv6 flows keeps its IPv6 entry across a rebuild too;
 * - its own iptables chains, named after its VNI: VXLAN for this VNI is accepted only from the
 *   allowed underlay sources; what comes out of the tunnel must carry an overlay source and may
 *   only go to the uplink (no tenant-to-tenant forwarding); SNAT on the uplink; upload traffic
 *   CLASSIFY'd into the tenant's class by input device (MASQUERADE rewrites the source later,
 *   and u32 "match mark" is silently ignored on kernels without CLS_U32_MARK);
 * - upload shaped by an HTB class on the uplink, download by an HTB class on the tunnel device
 *   itself: both directions count inner packets, so VXLAN overhead is never charged to a tenant.
 *
 * The uplink's HTB has a real default class for everything unclassified (the gateway's own
 * traffic, ARP, IPv6), so nothing bypasses shaping, and a class for re-encapsulated downloads,
 * which are already shaped on the tunnels and must not be counted again as the tenant's upload.
 *
 * Connection tracking is namespace state, like `forwarding`: turned on and never turned off.
 * The kernel tracks connections in a namespace only while some rule needs conntrack, and NAT
 * bindings only apply to tracked packets. If a rebuild removed every such rule, even for a
 * moment, replies to SNATed flows would pass untracked: not translated back, they reach the
 * gateway's own TCP stack, which answers with a reset; and conntrack, blind for that moment,
 * later finds the flow's sequence numbers out of its window and marks them INVALID, with the
 * same result. So a chain outside every scope the gateway deletes keeps tracking on, and drops
 * INVALID packets from the uplink instead of letting the kernel answer them.
 */

import { endianness } from "node:os";
import {
  type Address,
  type Chain,
  emptyState,
  type Jump,
  type Neighbour,
  type NetState,
  type NftChain,
  type Qdisc,
  type Scope,
  type Sysctl,
  type TcClass,
} from "../net/desired-state.js";
import { isHostOf, parseCidr, parseIP } from "../net/ip.js";
import { memoByText } from "../net/memo.js";
import type { FdbEntry, TrackedSource6 } from "../net/observe.js";
import type { LeafKind } from "../net/probe.js";
import { overlayIPOfMac, overlayMac, VXLAN_OVERHEAD, vniMatch } from "../net/vxlan.js";
import type { GatewayConfig, GatewayTenant } from "./config.js";
import { defaultClassRate } from "./config.js";
import { htbClass, leafQdisc } from "./shaping.js";

/** HTB handle major of every qdisc tree we own: how we recognise ours among others'. */
export const HANDLE = 0x7e;
const H = HANDLE.toString(16);
export const ROOT_CLASS = `${H}:1`;
export const DEFAULT_MINOR = 2;
export const TUNNEL_MINOR = 3;
export const ALIAS_PREFIX = "tenant-egress:";
/**
 * FDB ageing of learned pod VTEPs, in seconds (~46 days). The kernel turns 0 into its default
 * of 300 rather than "never"; this is the longest whose jiffies still fit in 32 bits.
 */
export const FDB_AGEING = 4_000_000;

export interface GatewayFacts {
  uplink: string;
  uplinkIP: string;
  uplinkMtu: number;
  leaf: LeafKind;
  /** The tunnels' FDB entries as the kernel learned them: which pods exist, and where. */
  fdb: readonly FdbEntry[];
  /** Original source addresses of tracked connections: pods with open flows. */
  tracked: readonly string[];
  /** The tunnels' IPv6 neighbour entries in any state: what pods' neighbour discovery taught the kernel. */
  ndp: readonly Neighbour[];
  /** Original sources of tracked IPv6 connections, with the MAC bits pairingChain recorded (absent: none). */
  tracked6?: readonly TrackedSource6[];
}

export const tunnelDevice = (vni: number) => `tev${vni}`;
export const isTunnelDevice = (name: string) => /^tev\d+$/.test(name);
export const classId = (minor: number) => `${H}:${minor.toString(16)}`;
const iptClass = (minor: number) => `00${H}:${minor.toString(16).padStart(4, "0")}`;

export function tenantChains(vni: number) {
  return { input: `TEG-IN-${vni}`, forward: `TEG-FWD-${vni}`, snat: `TEG-SNAT-${vni}`, classify: `TEG-CLS-${vni}` };
}
const TUNNEL_CHAIN = "TEG-TUNNEL";
/** Not "TEG-": no gateway scope owns it, so neither `delete` nor `reset` ever removes it. */
export const CONNTRACK_CHAIN = "TE-GW-CONNTRACK";

/** Everything a gateway owns: its devices, chains, neighbours and qdisc trees. */
export function gatewayScope(uplink: string): Scope {
  return {
    link: isTunnelDevice,
    chain: (_t, name) => name.startsWith("TEG-"),
    tcRoot: (dev) => dev === uplink || isTunnelDevice(dev),
    tcClass: (dev, classid) => (dev === uplink || isTunnelDevice(dev)) && classid.startsWith(`${H}:`),
    nftChain: (table) => table === NFT_TABLE,
  };
}

/** What belongs to one tenant only (for `delete --tenant`). */
export function tenantScope(uplink: string, vni: number, classMinor: number): Scope {
  const chains = new Set(Object.values(tenantChains(vni)));
  const dev = tunnelDevice(vni);
  return {
    link: (name) => name === dev,
    chain: (_t, name) => chains.has(name),
    tcRoot: (d) => d === dev,
    tcClass: (d, classid) => d === dev || (d === uplink && classid === classId(classMinor)),
  };
}

/** A pod the gateway has learned from its traffic: its overlay address follows from its MAC. */
export interface LearnedPod {
  tenant: string;
  dev: string;
  ip: string;
  mac: string;
  vtep: string;
}

/** A learned tunnel MAC that is no derived MAC of the tenant's overlay: a pod that breaks the contract. */
export interface Stranger {
  tenant: string;
  dev: string;
  mac: string;
  vtep: string;
}

/** What an operator needs to know about a contract breaker, in one sentence. */
export function describeStranger(st: Stranger, overlaySubnet: string): string {
  return `pod at VTEP ${st.vtep} sends tenant ${st.tenant}'s tunnel (${st.dev}) from MAC ${st.mac}, which is no derived MAC 02:7e:<overlay IPv4> of ${overlaySubnet}: the gateway keeps no neighbour entry for it, so traffic to it fails once ARP ages out`;
}

export interface LearnedPods {
  pods: LearnedPod[];
  strangers: Stranger[];
}

/** Whether `ip` can be one of the tenant's pods: a host of its overlay that is not the gateway's own address. */
const isHost = (t: GatewayTenant, ip: string): boolean => {
  const addr = parseIP(ip, 4);
  return addr !== undefined && isHostOf(subnetOf(t.overlaySubnet), addr) && ip !== t.gatewayOverlayIP;
};

/** A tenant's overlay subnet, parsed once: every reconcile tests each learned pod against it. */
const subnetOf = memoByText((text) => parseCidr(text)!);

/** Sorts each tunnel's learned FDB entries into the tenant's pods and the strangers. */
export function learnedPods(config: GatewayConfig, fdb: readonly FdbEntry[]): LearnedPods {
  const byDev = new Map(config.tenants.map((t) => [tunnelDevice(t.vni), t]));
  const out: LearnedPods = { pods: [], strangers: [] };
  for (const e of fdb) {
    const t = byDev.get(e.dev);
    if (!t) continue;
    const ip = overlayIPOfMac(e.mac);
    if (ip !== undefined && isHost(t, ip)) out.pods.push({ tenant: t.name, dev: e.dev, ip, mac: e.mac, vtep: e.dst });
    else out.strangers.push({ tenant: t.name, dev: e.dev, mac: e.mac, vtep: e.dst });
  }
  return out;
}

/** Whether `ip` can be one of the tenant's pods' overlay IPv6 addresses. */
const isHost6 = (t: GatewayTenant, ip: string): boolean => {
  const addr = parseIP(ip, 6);
  return addr !== undefined && isHostOf(subnetOf(t.overlaySubnet6), addr) && ip !== t.gatewayOverlayIP6;
};

/**
 * One permanent neighbour per pod the gateway knows of, learned or with tracked connections:
 * its derived MAC, so nothing waits for ARP.
 *
 * A dual-stack pod's overlay IPv6 has a twin entry with the same MAC. Its address cannot be
 * read from the MAC (it comes from the pod's own IPv6, from IPAM or a pin, not from its overlay
 * IPv4), but the kernel learns it: a pod's first IPv6 packet into the tunnel is a neighbour
 * solicitation for the gateway's overlay IPv6, sent from the pod's overlay IPv6 (the only IPv6
 * address its tunnel has) with its MAC, and the gateway keeps that as a neighbour entry. Made
 * permanent while the pod is learned, it keeps server pushes to an idle pod working over IPv6
 * too: the gateway never has to solicit (a multicast a tunnel without a default destination
 * could not deliver). A rebuilt tunnel has no such entries; conntrack's marks bring back those
 * of pods with open IPv6 flows (pairingChain), as its sources do for IPv4.
 */
export function podNeighbours(
  config: GatewayConfig,
  fdb: readonly FdbEntry[],
  tracked: readonly string[],
  ndp: readonly Neighbour[] = [],
  tracked6: readonly TrackedSource6[] = [],
): Neighbour[] {
  const out = new Map<string, Neighbour>();
  const byDev = new Map(config.tenants.map((t) => [tunnelDevice(t.vni), t]));
  for (const p of learnedPods(config, fdb).pods) {
    out.set(`${p.dev} ${p.ip}`, { dev: p.dev, ip: p.ip, mac: overlayMac(p.ip) });
    for (const n of ndp)
      if (n.dev === p.dev && n.mac === p.mac && isHost6(byDev.get(p.dev)!, n.ip))
        out.set(`${p.dev} ${n.ip}`, { dev: p.dev, ip: n.ip, mac: p.mac });
  }
  for (const ip of tracked) {
    const t = config.tenants.find((x) => isHost(x, ip));
    if (t) out.set(`${tunnelDevice(t.vni)} ${ip}`, { dev: tunnelDevice(t.vni), ip, mac: overlayMac(ip) });
  }
  // What neighbour discovery says now wins over what a connection recorded when it opened.
  for (const n of pairedNeighbours(config, tracked6)) if (!out.has(`${n.dev} ${n.ip}`)) out.set(`${n.dev} ${n.ip}`, n);
  return [...out.values()];
}

/**
 * The gateway's nftables table (ip6 family). Only chains are ours in it, so it stays, empty,
 * after `reset` (as the node's enforcement table does).
 */
export const NFT_TABLE = "tenant-egress-gateway";
const PAIRING_CHAIN = "pod-macs";

/**
 * What pairs a pod's overlay IPv6 with its MAC across a rebuild. Neighbour discovery pairs them
 * only in the tunnel's neighbour entries, which go with the tunnel; a rebuilt tunnel cannot
 * solicit them again (a multicast, and it has no flood destination), and the pod solicits the
 * gateway again only once its own entry for it goes stale (tens of seconds), so until then the
 * replies to its IPv6 are lost. Conntrack outlives the tunnel, so the first packet of each IPv6
 * connection from a tunnel writes the last four bytes of its source MAC (02:7e:<overlay IPv4>)
 * into the connection's mark, after conntrack has seen it (priority -150 > -200); `apply` reads
 * them back with the sources (pairedNeighbours). A mark per connection, not per packet: one rule
 * on the first packet, nothing to expire (the pairing goes with the connection). No other part of
 * the gateway uses connection marks; iptables cannot copy packet bytes into one, nftables can.
 */
function pairingChain(): NftChain {
  return {
    family: "ip6",
    table: NFT_TABLE,
    name: PAIRING_CHAIN,
    hook: "prerouting",
    device: "",
    priority: -150,
    policy: "accept",
    comment: "tenant-egress gateway: pods' IPv6 paired with their MACs",
    rules: ['iifname "tev*" ct state new ct mark set @ll,64,32'],
  };
}

/** The overlay IPv4 pairingChain recorded in a mark: the MAC's bytes as they lie in the host's u32. */
export function markedIPv4(mark: number, order = endianness()): string {
  const b = Buffer.alloc(4);
  if (order === "LE") b.writeUInt32LE(mark);
  else b.writeUInt32BE(mark);
  return [...b].join(".");
}

/**
 * The IPv6 neighbours conntrack's marks pair: an overlay IPv6 of a tenant whose connections
 * all carry the same derived MAC of that tenant's overlay (several: no pairing to trust).
 */
function pairedNeighbours(config: GatewayConfig, tracked6: readonly TrackedSource6[]): Neighbour[] {
  const macs = new Map<string, Set<string>>();
  for (const t of tracked6)
    if (t.mark !== 0) (macs.get(t.ip) ?? macs.set(t.ip, new Set()).get(t.ip)!).add(markedIPv4(t.mark));
  return [...macs].flatMap(([ip, ipv4s]) => {
    const ipv4 = [...ipv4s][0]!;
    const t = config.tenants.find((x) => isHost6(x, ip) && isHost(x, ipv4));
    return ipv4s.size === 1 && t ? [{ dev: tunnelDevice(t.vni), ip, mac: overlayMac(ipv4) }] : [];
  });
}

/**
 * A tenant's forwarding, SNAT and upload classification for one family: the same rules in
 * iptables and ip6tables, with that family's overlay and SNAT address. Accepting in FORWARD
 * keeps the gateway working under a FORWARD policy of DROP; only the tenant's own, well-formed
 * traffic and the replies to it (ICMP errors included, as RELATED) are accepted. Upload of both
 * families lands in the tenant's one upload class: one limit per tenant.
 */
function forwarding(
  t: GatewayTenant,
  uplink: string,
  overlay: string,
  snatTo: string,
): { chains: Chain[]; jumps: Jump[] } {
  const dev = tunnelDevice(t.vni);
  const names = tenantChains(t.vni);
  const target = snatTo === "masquerade" ? "-j MASQUERADE" : `-j SNAT --to-source ${snatTo}`;
  return {
    chains: [
      {
        table: "filter",
        name: names.forward,
        rules: [
          `! -s ${overlay} -i ${dev} -j DROP`,
          `-i ${dev} ! -o ${uplink} -j DROP`,
          `-i ${dev} -j ACCEPT`,
          `-o ${dev} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
        ],
      },
      { table: "nat", name: names.snat, rules: [`-s ${overlay} -o ${uplink} ${target}`] },
      {
        table: "mangle",
        name: names.classify,
        rules: [`-i ${dev} -o ${uplink} -j CLASSIFY --set-class ${iptClass(t.classMinor)}`],
      },
    ],
    jumps: [
      { table: "filter", hook: "FORWARD", match: "", chain: names.forward, first: true },
      { table: "nat", hook: "POSTROUTING", match: "", chain: names.snat, first: false },
      { table: "mangle", hook: "FORWARD", match: "", chain: names.classify, first: false },
    ],
  };
}

/** The conntrack keeper (see the top of this module), in one family's tables. */
function conntrackKeeper(uplink: string): { chain: Chain; jump: Jump } {
  return {
    chain: { table: "filter", name: CONNTRACK_CHAIN, rules: [`-i ${uplink} -m conntrack --ctstate INVALID -j DROP`] },
    jump: { table: "filter", hook: "INPUT", match: "", chain: CONNTRACK_CHAIN, first: true },
  };
}

/** The IPv6 half of a gateway: what pods' IPv6 needs beside the shared tunnels and classes. */
export interface GatewayState6 {
  sysctls: Sysctl[];
  addresses: Address[];
  chains: Chain[];
  jumps: Jump[];
  nftChains: NftChain[];
}

/**
 * IPv6 forwarding, each tenant's overlay IPv6 on its tunnel, and the twins of its forwarding,
 * NAT (to `snat6`, or MASQUERADE to the uplink's IPv6) and classification, and the chain that
 * pairs pods' IPv6 with their MACs in conntrack (pairingChain). The tunnels, their
 * neighbour entries (IPv6 twins included, see podNeighbours) and the HTB classes are the
 * IPv4 plan's: the download class on a tunnel already counts both families.
 */
export function planGateway6(config: GatewayConfig, f: Pick<GatewayFacts, "uplink">): GatewayState6 {
  const state: GatewayState6 = { sysctls: [], addresses: [], chains: [], jumps: [], nftChains: [] };
  if (config.tenants.length === 0) return state;
  const keeper = conntrackKeeper(f.uplink);
  state.sysctls.push({ dev: "all", name: "forwarding", value: 1 });
  state.nftChains.push(pairingChain());
  state.chains.push(keeper.chain);
  state.jumps.push(keeper.jump);
  for (const t of config.tenants) {
    state.addresses.push({ dev: tunnelDevice(t.vni), local: t.gatewayOverlayIP6, prefix: t.overlayPrefix6 });
    const inner = forwarding(t, f.uplink, t.overlaySubnet6, t.snat6);
    state.chains.push(...inner.chains);
    state.jumps.push(...inner.jumps);
  }
  return state;
}

export function planGateway(config: GatewayConfig, f: GatewayFacts): NetState {
  const state = emptyState();

  // A gateway serving no tenant owns nothing: not even the uplink's qdisc.
  if (config.tenants.length === 0) return state;
  const { uplink } = f;
  state.sysctls.push({ dev: "all", name: "forwarding", value: 1 });
  const keeper = conntrackKeeper(uplink);
  state.chains.push(keeper.chain);
  state.jumps.push(keeper.jump);

  // Uplink: root → default (unclassified) + tunnel (re-encapsulated downloads) + one class per tenant's upload.
  const root = htbClass(uplink, ROOT_CLASS, `${H}:`, config.linkRate, config.linkRate);
  const totalDownload = config.tenants.reduce((s, t) => s + t.download.rate, 0);
  const uplinkClasses: TcClass[] = [
    htbClass(uplink, classId(DEFAULT_MINOR), ROOT_CLASS, defaultClassRate(config.linkRate), config.linkRate),
    htbClass(uplink, classId(TUNNEL_MINOR), ROOT_CLASS, Math.max(totalDownload, 8000), config.linkRate),
  ];
  const tunnelRules: string[] = [];
  const ports = [...new Set(config.tenants.map((t) => t.port))];
  for (const port of ports)
    tunnelRules.push(`-o ${uplink} -p udp -m udp --dport ${port} -j CLASSIFY --set-class ${iptClass(TUNNEL_MINOR)}`);
  state.chains.push({ table: "mangle", name: TUNNEL_CHAIN, rules: tunnelRules });
  state.jumps.push({ table: "mangle", hook: "OUTPUT", match: "", chain: TUNNEL_CHAIN, first: false });

  for (const t of config.tenants) {
    const dev = tunnelDevice(t.vni);
    const chains = tenantChains(t.vni);
    state.links.push({
      name: dev,
      vni: t.vni,
      port: t.port,
      // A pair terminates VXLAN on the shared address, so replies reach pods from the address
      // they send to whichever instance is active (on the standby it is not yet local, which is
      // fine: the standby sends nothing into the tunnels).
      local: config.ha?.vip ?? f.uplinkIP,
      dev: uplink,
      mtu: f.uplinkMtu - VXLAN_OVERHEAD,
      mac: overlayMac(t.gatewayOverlayIP),
      learning: true,
      ageing: FDB_AGEING,
      alias: `${ALIAS_PREFIX}${t.name}`,
    });
    state.addresses.push({ dev, local: t.gatewayOverlayIP, prefix: t.overlayPrefix });

    const accept: Chain = {
      table: "filter",
      name: chains.input,
      rules: [...t.allowedSources.map((c) => `-s ${c} -j RETURN`), "-j DROP"],
    };
    const inner = forwarding(t, uplink, t.overlaySubnet, t.snat);
    state.chains.push(accept, ...inner.chains);
    state.jumps.push(
      {
        table: "filter",
        hook: "INPUT",
        match: `-p udp -m udp --dport ${t.port} ${vniMatch(t.vni)}`,
        chain: chains.input,
        first: true,
      },
      ...inner.jumps,
    );

    const up = htbClass(uplink, classId(t.classMinor), ROOT_CLASS, t.upload.rate, t.upload.ceil, t.upload.burst);
    uplinkClasses.push(up);
    const down = htbClass(dev, classId(t.classMinor), `${H}:`, t.download.rate, t.download.ceil, t.download.burst);
    state.qdiscs.push(
      { dev, parent: "root", handle: `${H}:`, kind: "htb", defaultClass: t.classMinor },
      leafQdisc(f.leaf, down),
    );
    state.classes.push(down);
  }

  state.neighbours.push(...podNeighbours(config, f.fdb, f.tracked, f.ndp, f.tracked6));
  const v6 = planGateway6(config, f);
  state.addresses.push(...v6.addresses);
  state.sysctls6.push(...v6.sysctls);
  state.chains6.push(...v6.chains);
  state.jumps6.push(...v6.jumps);
  state.nftChains.push(...v6.nftChains);
  const uplinkRoot: Qdisc = { dev: uplink, parent: "root", handle: `${H}:`, kind: "htb", defaultClass: DEFAULT_MINOR };
  state.qdiscs.push(uplinkRoot, ...uplinkClasses.map((c) => leafQdisc(f.leaf, c)));
  state.classes.push(root, ...uplinkClasses);
  return state;
}
