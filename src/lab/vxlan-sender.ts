/**
 * Pods as the gateway sees them, without attaching real ones: a process in a lab namespace that
 * sends one real VXLAN packet per pod MAC to a gateway, from a given underlay address (the
 * pod's VTEP). The gateway's kernel receives and learns it exactly as it learns a pod's first
 * packet; the inner frame is an empty ARP frame the gateway discards, because what matters is
 * the source MAC its tunnel learns. The benchmark uses it to make a thousand pods; the tests use
 * it to make a pod that breaks the MAC contract.
 */
import { run } from "../net/run.js";

export interface VxlanSend {
  /** The gateway's underlay address and VXLAN port. */
  to: string;
  port?: number;
  vni: number;
  /** The gateway tunnel's MAC (the inner destination). */
  dstMac: string;
  /** One packet per source MAC. */
  srcMacs: readonly string[];
  /** The VTEP address to send from (one of the namespace's own); default: chosen by routing. */
  from?: string;
}

const SENDER = `
const [to, port, vni, dst, from, ...macs] = process.argv.slice(1);
const mac = (m) => Buffer.from(m.split(":").map((h) => parseInt(h, 16)));
const header = Buffer.alloc(8);
header[0] = 0x08;
header.writeUIntBE(Number(vni), 4, 3);
const s = require("dgram").createSocket("udp4");
const send = (i) => {
  if (i === macs.length) return s.close();
  const frame = Buffer.concat([header, mac(dst), mac(macs[i]), Buffer.from([0x08, 0x06]), Buffer.alloc(28)]);
  s.send(frame, Number(port), to, (e) => { if (e) { console.error(e.message); process.exit(1); } send(i + 1); });
};
s.bind({ address: from || undefined }, () => send(0));
`;

/** Sends the packets from inside namespace `ns`. */
export async function sendVxlan(ns: string, o: VxlanSend): Promise<void> {
  await run(["ip", "netns", "exec", ns, "env", "-u", "NODE_OPTIONS", "node", "-e", SENDER, o.to, String(o.port ?? 4789), String(o.vni), o.dstMac, o.from ?? "", ...o.srcMacs]);
}
