/**
 * Raw frames from inside a lab namespace, as a privileged attacker sends them: an AF_PACKET
 * socket writes whole Ethernet frames onto a device, bypassing the namespace's routing, its
 * netfilter rules and its address configuration. Written with python3 from Debian's base
 * system (no packet-crafting tool needed); the script is fixed text, every value is an argv
 * argument.
 */
import { run } from "../net/run.js";

const SCRIPT = `
import socket, struct, sys
dev, src_mac, dst_mac, src, dst, dport, count = sys.argv[1:8]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
mac = lambda m: bytes.fromhex(m.replace(":", ""))
if src_mac == "-":
    src_mac = open(f"/sys/class/net/{dev}/address").read().strip()
payload = b"tenant-egress raw flood"
udp = struct.pack("!HHHH", 40000, int(dport), 8 + len(payload), 0) + payload
hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
csum = sum(struct.unpack("!10H", hdr))
csum = (csum & 0xffff) + (csum >> 16)
csum = ~((csum & 0xffff) + (csum >> 16)) & 0xffff
hdr = hdr[:10] + struct.pack("!H", csum) + hdr[12:]
frame = mac(dst_mac) + mac(src_mac) + b"\\x08\\x00" + hdr + udp
for _ in range(int(count)):
    s.send(frame)
`;

export interface RawUdp {
  dev: string;
  /** The source MAC; default: the device's own. */
  srcMac?: string;
  dstMac: string;
  src: string;
  dst: string;
  dport: number;
  count: number;
}

/** Sends `count` IPv4/UDP frames out of `dev` in `ns`, exactly as given. */
export async function sendRawUdp(ns: string, f: RawUdp): Promise<void> {
  // /sys must be this namespace's: ip netns exec mounts it.
  await run([
    "ip",
    "netns",
    "exec",
    ns,
    "python3",
    "-c",
    SCRIPT,
    f.dev,
    f.srcMac ?? "-",
    f.dstMac,
    f.src,
    f.dst,
    String(f.dport),
    String(f.count),
  ]);
}
