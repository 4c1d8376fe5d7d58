/**
 * The standby must know where every pod is before it is needed. A gateway learns pods' VTEPs
 * from their traffic, and the standby sees none; after a takeover, a server pushing to a pod
 * that stays silent (a websocket, a long poll) would find no FDB entry for it and be dropped
 * until the pod happens to send. So the active tells the standby, over the sync link, which
 * pods its tunnels have learned (device, MAC, VTEP), at once on every change and every second;
 * the standby mirrors them into its own tunnels as ordinary dynamic entries, which the daemon
 * turns into neighbour entries as it does for learned ones, and which real traffic may still
 * move. The same datagrams tell each side when it last heard its peer's daemon, and, while it is
 * active, for how long it has been: the second path between the two that settles a split brain
 * (src/gateway/ha/contest.ts) when VRRP's own path is cut.
 */
import { createSocket, type Socket } from "node:dgram";
import { observeFdb } from "../../net/observe.js";
import { run } from "../../net/run.js";
import type { Logger } from "../log.js";

export interface SharedPod {
  dev: string;
  mac: string;
  vtep: string;
}

interface Message {
  from: string;
  active: boolean;
  /** While active: for how long, by the sender's monotonic clock (no clock sync needed). */
  activeForMs?: number;
  /** One snapshot may span several datagrams; a receiver applies it whole. */
  snapshot: number;
  part: number;
  parts: number;
  pods: Array<[string, string, string]>;
}

const PER_DATAGRAM = 400;
const EVERY_MS = 1000;

export interface PodShareOptions {
  self: string;
  bind: { address: string; port: number };
  peer: { address: string; port: number };
  log: Logger;
  /** For how long this instance has been active, or undefined if it is not (only the active's view is sent and only a standby applies). */
  activeForMs: () => number | undefined;
  /** Each datagram heard from the peer's daemon. */
  onPeer?: (seen: PeerSeen) => void;
  /** The pods this instance's tunnels have learned. */
  pods: () => SharedPod[];
  /** The tunnel devices of the configuration in force. */
  tunnels: () => string[];
}

export interface PeerSeen {
  at: Date;
  active: boolean;
  /** For how long it had been active when it sent this. */
  activeForMs?: number;
}

export class PodShare {
  private socket?: Socket;
  private timer?: NodeJS.Timeout;
  private snapshot = 0;
  private incoming = new Map<number, Message[]>();
  private applying = Promise.resolve();
  /** When the peer's daemon was last heard, and whether it said it was active. */
  peerSeen?: PeerSeen;
  mirrored = 0;

  constructor(private readonly o: PodShareOptions) {}

  async start(): Promise<void> {
    const socket = createSocket("udp4");
    this.socket = socket;
    socket.on("message", (buf) => this.receive(buf));
    socket.on("error", (e) => this.o.log("error", "pod-share", `learned-pod exchange: ${e.message}`));
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(this.o.bind.port, this.o.bind.address, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    this.timer = setInterval(() => this.send(), EVERY_MS);
  }

  /** Sends this instance's view now (a pod was learned or forgotten, or the role changed). */
  send(): void {
    const socket = this.socket;
    if (!socket) return;
    const activeForMs = this.o.activeForMs();
    const active = activeForMs !== undefined;
    const pods = active ? this.o.pods().map((p): [string, string, string] => [p.dev, p.mac, p.vtep]) : [];
    const snapshot = ++this.snapshot;
    const parts = Math.max(1, Math.ceil(pods.length / PER_DATAGRAM));
    for (let part = 0; part < parts; part++) {
      const m: Message = {
        from: this.o.self,
        active,
        ...(active ? { activeForMs: Math.round(activeForMs) } : {}),
        snapshot,
        part,
        parts,
        pods: pods.slice(part * PER_DATAGRAM, (part + 1) * PER_DATAGRAM),
      };
      socket.send(JSON.stringify(m), this.o.peer.port, this.o.peer.address, () => {});
    }
  }

  private isActive(): boolean {
    return this.o.activeForMs() !== undefined;
  }

  stop(): void {
    clearInterval(this.timer);
    this.socket?.close();
    this.socket = undefined;
  }

  private receive(buf: Buffer): void {
    let m: Message;
    try {
      m = JSON.parse(buf.toString("utf8")) as Message;
    } catch {
      return;
    }
    if (typeof m.snapshot !== "number" || !Array.isArray(m.pods)) return;
    this.peerSeen = {
      at: new Date(),
      active: !!m.active,
      ...(typeof m.activeForMs === "number" ? { activeForMs: m.activeForMs } : {}),
    };
    this.o.onPeer?.(this.peerSeen);
    if (!m.active || this.isActive()) return;
    const parts = this.incoming.get(m.snapshot) ?? [];
    parts.push(m);
    this.incoming.set(m.snapshot, parts);
    if (parts.length < m.parts) return;
    this.incoming.clear();
    const pods = parts.flatMap((p) => p.pods.map(([dev, mac, vtep]) => ({ dev, mac, vtep })));
    this.applying = this.applying.then(() =>
      this.mirror(pods).catch((e) => this.o.log("error", "pod-share", `cannot mirror the peer's pods: ${e.message}`)),
    );
  }

  /** Makes the tunnels' FDB hold exactly the peer's pods (the standby has no traffic of its own). */
  private async mirror(pods: SharedPod[]): Promise<void> {
    if (this.isActive()) return;
    const tunnels = new Set(this.o.tunnels());
    const wanted = pods.filter((p) => tunnels.has(p.dev));
    const key = (p: SharedPod) => `${p.dev} ${p.mac} ${p.vtep}`;
    const have = await observeFdb(undefined, [...tunnels]);
    const haveKeys = new Set(have.map((e) => key({ dev: e.dev, mac: e.mac, vtep: e.dst })));
    const wantKeys = new Set(wanted.map(key));
    const lines = [
      ...have
        .filter((e) => !wantKeys.has(key({ dev: e.dev, mac: e.mac, vtep: e.dst })))
        .map((e) => `fdb del ${e.mac} dev ${e.dev} dst ${e.dst}`),
      ...wanted
        .filter((p) => !haveKeys.has(key(p)))
        .map((p) => `fdb replace ${p.mac} dev ${p.dev} dst ${p.vtep} dynamic`),
    ];
    this.mirrored = wanted.length;
    if (lines.length) await run(["bridge", "-force", "-batch", "-"], { input: `${lines.join("\n")}\n` });
  }
}
