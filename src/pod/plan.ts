/**
 * The desired state of one pod attachment: a pure function of the configuration, the chosen
 * gateway and the pod's addresses. ADD reconciles towards it, CHECK compares against it, and
 * DEL reconciles towards nothing within `podScope`, which names what is ours without needing
 * any of the pod's data (DEL may come with no prevResult and no netns).
 *
 * What each piece is for (DESIGN.md §2):
 * - the vxlan device, with `remote` = the gateway so ARP and unknown unicast reach it, and no
 *   learning (only the gateway talks to this tunnel);
 * - the overlay address as a point-to-point /32 to the gateway's overlay address, so no broad
 *   overlay route shadows cluster ranges in the main table;
 * - mark (masked, so other components' mark bits survive) every packet to a non-excluded
 *   destination, in OUTPUT (the pod's own traffic leaving through this attachment's interface)
 *   and PREROUTING (traffic forwarded through the pod: nested containers, docker-in-docker —
 *   routed by the main table, so steered by the attachment that holds its default route); a
 *   packet another attachment has marked already is left alone;
 * - per attachment its own table, rule priority and mark value (slots.ts), recorded on the
 *   tunnel's alias, so several attachments in one pod coexist;
 * - `ip rule fwmark → table`, whose default route goes into the tunnel, plus a `throw` for the
 *   gateway's underlay address: the encapsulated packet keeps the mark, and without the throw
 *   its own route lookup would loop into the tunnel; throw sends it on to the main table, so
 *   the gateway may be on another node, behind any number of routers;
 * - SNAT to the overlay address on the tunnel: the source was chosen at the first, unmarked
 *   route lookup (the pod's eth0 address), and the reroute after marking keeps it; without SNAT
 *   the gateway would answer the pod's eth0 address over the underlay, bypassing the tunnel;
 * - MSS clamp on SYN and SYN-ACK in both directions of the tunnel;
 * - rp_filter not strict on the tunnel: replies arrive there while the main table points
 *   elsewhere. The kernel filters by the larger of conf/all and the device's own value, so with
 *   `all` off or loose the device may be off as well (what it gets from conf/default in most
 *   namespaces: then nothing is written); only 2 is written when something must be.
 */
import type { Chain, Jump, NetState, Scope } from "../net/desired-state.js";
import { formatCidr } from "../net/ip.js";
import { overlayMac, VXLAN_OVERHEAD } from "../net/vxlan.js";
import type { PluginConfig } from "./config.js";
import { exclusions } from "./config.js";
import { names } from "./names.js";
import { planPod6 } from "./plan6.js";
import type { Attachment } from "./select-gateway.js";
import { type Slot, slotAlias } from "./slots.js";

/** IPv4 20 + TCP 20. */
const TCPIP_HEADERS = 40;

export interface PodInputs {
  ifname: string;
  podIP: string;
  overlayIP: string;
  /** MTU of CNI_IFNAME in the pod, as observed. */
  underlayMtu: number;
  /** Whether CNI_IFNAME holds the pod's default route (then forwarded traffic is this attachment's). */
  defaultRoute: boolean;
  slot: Slot;
  /** A dual-stack pod's overlay IPv6: its public IPv6 is steered too (plan6.ts). */
  overlayIP6?: string;
  /** Whether CNI_IFNAME holds the pod's IPv6 default route (forwarded IPv6 is then this attachment's). */
  defaultRoute6?: boolean;
  /** The pod namespace's conf/all rp_filter, as observed (strict if unknown). */
  allRpFilter?: number;
}

const STRICT = 1;

/** The tunnel's rp_filter values that leave it not strict, given conf/all's (the kernel takes the larger). */
function looseEnough(all: number): number[] {
  return [0, 1, 2].filter((v) => Math.max(all, v) !== STRICT);
}

/** What the attachment on `ifname` owns: its device and chains by name, the rules and tables of its slots. */
export function podScope(ifname: string, slots: readonly Slot[]): Scope {
  const n = names(ifname);
  const chains = new Set([n.markChain, n.mssChain, n.snatChain]);
  return {
    link: (name) => name === n.device,
    rule: (r) => slots.some((s) => s.table === r.table && s.priority === r.priority),
    routeTable: (t) => slots.some((s) => s.table === t),
    chain: (_table, name) => chains.has(name),
  };
}

export function planPod(config: PluginConfig, a: Attachment, p: PodInputs): NetState {
  const n = names(p.ifname);
  const { table, priority, mark } = p.slot;
  const mtu = config.mtu ?? p.underlayMtu - VXLAN_OVERHEAD;
  const mss = config.mss ?? mtu - TCPIP_HEADERS;
  const excluded = [...exclusions(config), formatCidr(a.overlaySubnet), `${a.gateway}/32`].filter(
    (c, i, all) => all.indexOf(c) === i,
  );

  const markChain: Chain = {
    table: "mangle",
    name: n.markChain,
    rules: [
      `-m mark ! --mark 0x0/${mark.split("/")[1]} -j RETURN`,
      ...excluded.map((c) => `-d ${c} -j RETURN`),
      `-j MARK --set-xmark ${mark}`,
    ],
  };
  const clamp = `-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss ${mss}`;
  const mssChain: Chain = {
    table: "mangle",
    name: n.mssChain,
    rules: [`-o ${n.device} ${clamp}`, `-i ${n.device} ${clamp}`],
  };
  const snatChain: Chain = {
    table: "nat",
    name: n.snatChain,
    rules: [`-o ${n.device} -j SNAT --to-source ${p.overlayIP}`],
  };
  const jumps: Jump[] = [
    { table: "mangle", hook: "OUTPUT", match: `-o ${p.ifname}`, chain: n.markChain, first: true },
    ...(p.defaultRoute
      ? [{ table: "mangle", hook: "PREROUTING", match: "", chain: n.markChain, first: true } as const]
      : []),
    { table: "mangle", hook: "PREROUTING", match: "", chain: n.mssChain, first: false },
    { table: "mangle", hook: "POSTROUTING", match: "", chain: n.mssChain, first: false },
    // First: nested container engines add their own MASQUERADE, which must not win.
    { table: "nat", hook: "POSTROUTING", match: "", chain: n.snatChain, first: true },
  ];

  const v6 = p.overlayIP6
    ? planPod6(config, a, {
        ifname: p.ifname,
        overlayIP6: p.overlayIP6,
        mss4: mss,
        slot: p.slot,
        defaultRoute: p.defaultRoute6 ?? false,
      })
    : undefined;
  return {
    links: [
      {
        name: n.device,
        vni: a.vni,
        port: a.port,
        local: p.podIP,
        remote: a.gateway,
        dev: p.ifname,
        mtu,
        mac: overlayMac(p.overlayIP),
        learning: false,
        ageing: 300,
        alias: slotAlias(p.slot),
      },
    ],
    addresses: [
      { dev: n.device, local: p.overlayIP, prefix: 32, peer: a.gatewayOverlayIP },
      ...(v6 ? [v6.address] : []),
    ],
    rules: [{ priority, fwmark: mark, table }],
    routes: [
      {
        table,
        type: "unicast",
        dst: "default",
        gateway: a.gatewayOverlayIP,
        dev: n.device,
        onlink: true,
      },
      { table, type: "throw", dst: a.gateway },
    ],
    sysctls: [
      {
        dev: n.device,
        name: "rp_filter",
        value: 2,
        accept: looseEnough(p.allRpFilter ?? STRICT).filter((v) => v !== 2),
      },
    ],
    chains: [markChain, mssChain, snatChain],
    jumps,
    neighbours: [],
    qdiscs: [],
    classes: [],
    nftChains: [],
    rules6: v6?.rules ?? [],
    routes6: v6?.routes ?? [],
    sysctls6: [],
    chains6: v6?.chains ?? [],
    jumps6: v6?.jumps ?? [],
  };
}
