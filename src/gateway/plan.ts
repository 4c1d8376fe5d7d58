/**
 * The desired state of a gateway namespace: a pure function of the configuration and a few
 * facts about the namespace (its uplink, the uplink's address, which leaf qdiscs the kernel
 * has). `apply` reconciles towards it, `delete --tenant` and `reset` towards nothing within a
 * smaller scope. Per tenant:
 *
 * - a vxlan device `tev<VNI>` that learns pod VTEPs and keeps them for weeks, plus a permanent
 *   neighbour entry for every overlay address (pod MACs are derived from their overlay IPs):
 *   a server can push to a pod that has been idle for hours, with no ARP and no FDB expiry;
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
import type { Chain, Jump, NetState, Neighbour, Qdisc, Scope, TcClass } from "../net/desired-state.js";
import { broadcastOf, formatIPv4, parseCidr, parseIPv4 } from "../net/ipv4.js";
import type { LeafKind } from "../net/probe.js";
import { overlayMac, VXLAN_OVERHEAD, vniMatch } from "../net/vxlan.js";
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
    rule: () => false,
    routeTable: () => false,
    chain: (_t, name) => name.startsWith("TEG-"),
    tcRoot: (dev) => dev === uplink || isTunnelDevice(dev),
    tcClass: (dev, classid) => (dev === uplink || isTunnelDevice(dev)) && classid.startsWith(`${H}:`),
    nftChain: () => false,
  };
}

/** What belongs to one tenant only (for `delete --tenant`). */
export function tenantScope(uplink: string, vni: number, classMinor: number): Scope {
  const chains = new Set(Object.values(tenantChains(vni)));
  const dev = tunnelDevice(vni);
  return {
    link: (name) => name === dev,
    rule: () => false,
    routeTable: () => false,
    chain: (_t, name) => chains.has(name),
    tcRoot: (d) => d === dev,
    tcClass: (d, classid) => d === dev || (d === uplink && classid === classId(classMinor)),
    nftChain: () => false,
  };
}

function tenantNeighbours(t: GatewayTenant, dev: string): Neighbour[] {
  const subnet = parseCidr(t.overlaySubnet)!;
  const gw = parseIPv4(t.gatewayOverlayIP)!;
  const out: Neighbour[] = [];
  for (let a = subnet.network + 1; a < broadcastOf(subnet); a++) {
    if (a === gw) continue;
    const ip = formatIPv4(a);
    out.push({ dev, ip, mac: overlayMac(ip) });
  }
  return out;
}

export function planGateway(config: GatewayConfig, f: GatewayFacts): NetState {
  const state: NetState = { links: [], addresses: [], rules: [], routes: [], sysctls: [], chains: [], jumps: [], neighbours: [], qdiscs: [], classes: [], nftTables: [] };
  // A gateway serving no tenant owns nothing: not even the uplink's qdisc.
  if (config.tenants.length === 0) return state;
  const { uplink } = f;
  state.sysctls.push({ dev: "all", name: "forwarding", value: 1 });
  state.chains.push({ table: "filter", name: CONNTRACK_CHAIN, rules: [`-i ${uplink} -m conntrack --ctstate INVALID -j DROP`] });
  state.jumps.push({ table: "filter", hook: "INPUT", match: "", chain: CONNTRACK_CHAIN, first: true });

  // Uplink: root → default (unclassified) + tunnel (re-encapsulated downloads) + one class per tenant's upload.
  const root = htbClass(uplink, ROOT_CLASS, `${H}:`, config.linkRate, config.linkRate);
  const totalDownload = config.tenants.reduce((s, t) => s + t.download.rate, 0);
  const uplinkClasses: TcClass[] = [
    htbClass(uplink, classId(DEFAULT_MINOR), ROOT_CLASS, defaultClassRate(config.linkRate), config.linkRate),
    htbClass(uplink, classId(TUNNEL_MINOR), ROOT_CLASS, Math.max(totalDownload, 8000), config.linkRate),
  ];
  const tunnelRules: string[] = [];
  const ports = [...new Set(config.tenants.map((t) => t.port))];
  for (const port of ports) tunnelRules.push(`-o ${uplink} -p udp -m udp --dport ${port} -j CLASSIFY --set-class ${iptClass(TUNNEL_MINOR)}`);
  state.chains.push({ table: "mangle", name: TUNNEL_CHAIN, rules: tunnelRules });
  state.jumps.push({ table: "mangle", hook: "OUTPUT", match: "", chain: TUNNEL_CHAIN, first: false });

  for (const t of config.tenants) {
    const dev = tunnelDevice(t.vni);
    const chains = tenantChains(t.vni);
    state.links.push({
      name: dev,
      vni: t.vni,
      port: t.port,
      local: f.uplinkIP,
      dev: uplink,
      mtu: f.uplinkMtu - VXLAN_OVERHEAD,
      mac: overlayMac(t.gatewayOverlayIP),
      learning: true,
      ageing: FDB_AGEING,
      alias: `${ALIAS_PREFIX}${t.name}`,
    });
    state.addresses.push({ dev, local: t.gatewayOverlayIP, prefix: t.overlayPrefix });
    state.neighbours.push(...tenantNeighbours(t, dev));

    const accept: Chain = { table: "filter", name: chains.input, rules: [...t.allowedSources.map((c) => `-s ${c} -j RETURN`), "-j DROP"] };
    // Accepting here keeps the gateway working under a FORWARD policy of DROP; only the
    // tenant's own, well-formed traffic and the replies to it are accepted.
    const forward: Chain = {
      table: "filter",
      name: chains.forward,
      rules: [
        `! -s ${t.overlaySubnet} -i ${dev} -j DROP`,
        `-i ${dev} ! -o ${uplink} -j DROP`,
        `-i ${dev} -j ACCEPT`,
        `-o ${dev} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      ],
    };
    const snatTarget = t.snat === "masquerade" ? "-j MASQUERADE" : `-j SNAT --to-source ${t.snat}`;
    const snat: Chain = { table: "nat", name: chains.snat, rules: [`-s ${t.overlaySubnet} -o ${uplink} ${snatTarget}`] };
    const classify: Chain = { table: "mangle", name: chains.classify, rules: [`-i ${dev} -o ${uplink} -j CLASSIFY --set-class ${iptClass(t.classMinor)}`] };
    state.chains.push(accept, forward, snat, classify);
    const jumps: Jump[] = [
      { table: "filter", hook: "INPUT", match: `-p udp -m udp --dport ${t.port} ${vniMatch(t.vni)}`, chain: chains.input, first: true },
      { table: "filter", hook: "FORWARD", match: "", chain: chains.forward, first: true },
      { table: "nat", hook: "POSTROUTING", match: "", chain: chains.snat, first: false },
      { table: "mangle", hook: "FORWARD", match: "", chain: chains.classify, first: false },
    ];
    state.jumps.push(...jumps);

    const up = htbClass(uplink, classId(t.classMinor), ROOT_CLASS, t.upload.rate, t.upload.ceil, t.upload.burst);
    uplinkClasses.push(up);
    const down = htbClass(dev, classId(t.classMinor), `${H}:`, t.download.rate, t.download.ceil, t.download.burst);
    state.qdiscs.push({ dev, parent: "root", handle: `${H}:`, kind: "htb", defaultClass: t.classMinor }, leafQdisc(f.leaf, down));
    state.classes.push(down);
  }

  const uplinkRoot: Qdisc = { dev: uplink, parent: "root", handle: `${H}:`, kind: "htb", defaultClass: DEFAULT_MINOR };
  state.qdiscs.push(uplinkRoot, ...uplinkClasses.map((c) => leafQdisc(f.leaf, c)));
  state.classes.push(root, ...uplinkClasses);
  return state;
}
