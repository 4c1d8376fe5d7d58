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
  /** One packet per pod: its tenant's VNI, the gateway tunnel's MAC, and the pod's (source) MAC. */
  frames: ReadonlyArray<{ vni: number; dstMac: string; srcMac: string }>;
  /** The VTEP address to send from (one of the namespace's own); default: chosen by routing. */
  from?: string;
}

const SENDER = `
const [to, port, from, ...frames] = process.argv.slice(1);
const mac = (m) => Buffer.from(m.split(":").map((h) => parseInt(h, 16)));
const s = require("dgram").createSocket("udp4");
const send = (i) => {
  if (i === frames.length) return s.close();
  const [vni, dst, src] = frames[i].split("/");
  const header = Buffer.alloc(8);
  header[0] = 0x08;
  header.writeUIntBE(Number(vni), 4, 3);
  const frame = Buffer.concat([header, mac(dst), mac(src), Buffer.from([0x08, 0x06]), Buffer.alloc(28)]);
  s.send(frame, Number(port), to, (e) => { if (e) { console.error(e.message); process.exit(1); } send(i + 1); });
};
s.bind({ address: from || undefined }, () => send(0));
`;

/** Sends the packets from inside namespace `ns`. */
export async function sendVxlan(ns: string, o: VxlanSend): Promise<void> {
  const frames = o.frames.map((f) => `${f.vni}/${f.dstMac}/${f.srcMac}`);
  await run([
    "ip",
    "netns",
    "exec",
    ns,
    "env",
    "-u",
    "NODE_OPTIONS",
    "node",
    "-e",
    SENDER,
    o.to,
    String(o.port ?? 4789),
    o.from ?? "",
    ...frames,
  ]);
}
