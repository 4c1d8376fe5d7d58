/**
 * VXLAN facts both halves must agree on: the encapsulation overhead that sets tunnel MTUs, the
 * MAC a pod's tunnel gets (derived from its overlay address, so a gateway knows it in advance),
 * and the matches that recognise one VNI on the wire (iptables: the gateway accepts a tenant's
 * tunnel; nftables: the node keeps a pod on its own).
 */
import { formatIP, parseIP } from "./ip.js";

/** VXLAN over IPv4 costs 50 bytes: outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD = 50;

/**
 * A MAC address derived from the overlay IP (02:7e:a:b:c:d, locally administered unicast):
 * the gateway can then keep a permanent neighbour entry per overlay address, and a restarted
 * pod with the same overlay address keeps its MAC, so nothing waits for ARP or FDB ageing.
 */
export function overlayMac(ip: string): string {
  const addr = Number(parseIP(ip, 4));
  return ["02", "7e", ...[24, 16, 8, 0].map((s) => ((addr >>> s) & 255).toString(16).padStart(2, "0"))].join(":");
}

/**
 * A tunnel's default overlay IPv6 prefix: a ULA /48 (RFC 4193) whose 40-bit global ID is the
 * VNI followed by 7e7e (fd00:64:7e7e::/48 for VNI 100). Both halves know the VNI, so they agree
 * without configuration; VNIs are unique per gateway, so tenants' prefixes never overlap there
 * (their connected routes on the tunnels would); and a pod's IPv6 host bits below /48 fit in
 * it, so derived overlay addresses are unique for any cluster whose pod IPv6 range fits in a /48.
 */
export function defaultOverlaySubnet6(vni: number): string {
  return `${formatIP(6, (0xfdn << 120n) | (BigInt(vni) << 96n) | (0x7e7en << 80n))}/48`;
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
