/**
 * VXLAN facts both halves must agree on: the encapsulation overhead that sets tunnel MTUs, the
 * MAC a pod's tunnel gets (derived from its overlay address, so a gateway knows it in advance),
 * and the matches that recognise one VNI on the wire (iptables: the gateway accepts a tenant's
 * tunnel; nftables: the node keeps a pod on its own).
 */
import { parseIPv4 } from "./ipv4.js";

/** VXLAN over IPv4 costs 50 bytes: outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD = 50;

/**
 * A MAC address derived from the overlay IP (02:7e:a:b:c:d, locally administered unicast):
 * the gateway can then keep a permanent neighbour entry per overlay address, and a restarted
 * pod with the same overlay address keeps its MAC, so nothing waits for ARP or FDB ageing.
 */
export function overlayMac(ip: string): string {
  const addr = parseIPv4(ip) as number;
  return ["02", "7e", ...[24, 16, 8, 0].map((s) => ((addr >>> s) & 255).toString(16).padStart(2, "0"))].join(":");
}

/** The overlay IPv4 a derived MAC stands for, or undefined when `mac` is not one (the inverse of overlayMac). */
export function overlayIPOfMac(mac: string): string | undefined {
  const m = /^02:7e:([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(mac);
  return m
    ? m
        .slice(1)
        .map((h) => parseInt(h, 16))
        .join(".")
    : undefined;
}

/** The same in nftables' printed form: 24 bits at bit 96 of the UDP header (8 UDP bytes + 4 VXLAN bytes). */
export const nftVniMatch = (vni: number) => `@th,96,24 0x${vni.toString(16)}`;

/** "UDP payload is VXLAN with this VNI" (VNI in bytes 4-6 of the VXLAN header), in iptables-save's normal form. */
export const vniMatch = (vni: number) => `-m u32 --u32 "0x0>>0x16&0x3c@0xc>>0x8=0x${vni.toString(16)}"`;
