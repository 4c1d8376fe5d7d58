/**
 * The IPv6 half of a dual-stack pod's attachment: each piece the twin of an IPv4 one in plan.ts,
 * riding the same tunnel (VXLAN is L2: inner IPv6 frames cross the IPv4 underlay unchanged).
 * - the same mark (the attachment's slot, slots.ts), in ip6tables, for public IPv6 destinations
 *   (all but the built-in and configured IPv6 exclusions and the IPv6 overlay), in OUTPUT for
 *   traffic leaving through this attachment's interface, and in PREROUTING (forwarded traffic)
 *   only if this attachment's interface holds the pod's IPv6 default route; a packet another
 *   attachment has marked already is left alone;
 * - an `ip -6 rule` at the slot's priority into the slot's table number, whose default goes via
 *   the gateway's overlay IPv6 into the tunnel; no throw is needed, the encapsulated packets are IPv4;
 * - SNAT (NAT66) to the pod's overlay IPv6 on the tunnel, for the reason IPv4 needs it: the
 *   source was chosen at the first, unmarked lookup (the pod's eth0 IPv6);
 * - the MSS clamp on SYN and SYN-ACK at tunnel MTU - 60 (IPv6 40 + TCP 20: 1390 on 1450);
 * - the overlay IPv6 as a /128 without DAD: nothing else can hold it on a point-to-point
 *   tunnel, and DAD would keep it tentative (unusable) for a second after ADD;
 * - router advertisements from the tunnel dropped: it accepts VXLAN of its VNI from anywhere,
 *   and an RA could otherwise install a default route through it in the main table.
 * ICMPv6 Packet Too Big is left alone on purpose: routers never fragment IPv6, so path MTU
 * discovery must work, and conntrack maps the error back through both NATs as RELATED.
 */
import type { Address, Chain, Jump, Route, Rule } from "../net/desired-state.js";
import { formatCidr } from "../net/ip.js";
import { exclusions6, type PluginConfig } from "./config.js";
import { names } from "./names.js";
import type { Attachment } from "./select-gateway.js";
import type { Slot } from "./slots.js";

/** IPv6 40 + TCP 20: 20 more than IPv4's. */
export const TCPIP6_HEADERS = 60;

export interface PodInputs6 {
  ifname: string;
  overlayIP6: string;
  /** The IPv4 clamp of the same tunnel (configured, or tunnel MTU - 40). */
  mss4: number;
  /** The attachment's slot: the same table, priority and mark as its IPv4 half. */
  slot: Slot;
  /** Whether CNI_IFNAME holds the pod's IPv6 default route (then forwarded IPv6 is this attachment's). */
  defaultRoute: boolean;
}

export interface PodState6 {
  address: Address;
  rules: Rule[];
  routes: Route[];
  chains: Chain[];
  jumps: Jump[];
}

export function planPod6(config: PluginConfig, a: Attachment, p: PodInputs6): PodState6 {
  const n = names(p.ifname);
  const { table, priority, mark } = p.slot;
  const mss = p.mss4 - (TCPIP6_HEADERS - 40);
  const excluded = [...exclusions6(config), formatCidr(a.overlaySubnet6)].filter((c, i, all) => all.indexOf(c) === i);
  const clamp = `-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss ${mss}`;
  return {
    address: { dev: n.device, local: p.overlayIP6, prefix: 128 },
    rules: [{ priority, fwmark: mark, table }],
    routes: [
      {
        table,
        type: "unicast",
        dst: "default",
        gateway: a.gatewayOverlayIP6,
        dev: n.device,
        onlink: true,
      },
    ],
    chains: [
      {
        table: "mangle",
        name: n.markChain,
        rules: [
          `-m mark ! --mark 0x0/${mark.split("/")[1]} -j RETURN`,
          ...excluded.map((c) => `-d ${c} -j RETURN`),
          `-j MARK --set-xmark ${mark}`,
        ],
      },
      {
        table: "mangle",
        name: n.mssChain,
        rules: [
          `-o ${n.device} ${clamp}`,
          `-i ${n.device} ${clamp}`,
          `-i ${n.device} -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP`,
        ],
      },
      { table: "nat", name: n.snatChain, rules: [`-o ${n.device} -j SNAT --to-source ${p.overlayIP6}`] },
    ],
    jumps: [
      { table: "mangle", hook: "OUTPUT", match: `-o ${p.ifname}`, chain: n.markChain, first: true },
      ...(p.defaultRoute
        ? [{ table: "mangle", hook: "PREROUTING", match: "", chain: n.markChain, first: true } as const]
        : []),
      { table: "mangle", hook: "PREROUTING", match: "", chain: n.mssChain, first: false },
      { table: "mangle", hook: "POSTROUTING", match: "", chain: n.mssChain, first: false },
      { table: "nat", hook: "POSTROUTING", match: "", chain: n.snatChain, first: true },
    ],
  };
}
