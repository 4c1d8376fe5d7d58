/**
 * One instance of an active/standby gateway pair. Both instances keep the full tenant state
 * (the daemon's reconcile runs on both); this controller adds what makes them a pair: it
 * renders keepalived's and conntrackd's configurations, supervises both (and a tcpdump that
 * watches the peer's VRRP advertisements, so status can say when the peer was last heard and at
 * which priority, and `ip monitor link` for the tunnels keepalived tracks through a file), and acts on keepalived's transitions in the order connections need:
 * becoming active, it commits the replicated connections into the kernel *before* claiming the
 * addresses, so the first packet of a taken-over flow already finds its NAT binding (a packet
 * without one would reach the local stack and be answered with a reset); becoming standby (or
 * faulty, or when keepalived dies), it drops the addresses first and then asks the active for a
 * full resync. Transitions are handled one at a time, in the order keepalived reported them.
 * When both instances are active at once with VRRP's path between them cut, the one that became
 * active later steps back (src/gateway/ha/contest.ts), told so by the peer over the sync link.
 */
import { constants, openSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { run } from "../../net/run.js";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../log.js";
import { tunnelDevice } from "../plan.js";
import { AddressShell, held, type MovingAddress, movingAddresses } from "./addresses.js";
import { Supervised } from "./child.js";
import {
  type ConntrackdFiles,
  type CtlRequest,
  conntrackdArgv,
  conntrackdCtl,
  parseSyncStats,
  renderConntrackd,
  type SyncStats,
} from "./conntrackd.js";
import { shouldYield, vrrpPathWorks } from "./contest.js";
import { type KeepalivedFiles, keepalivedArgv, parseNotify, renderKeepalived, type VrrpState } from "./keepalived.js";
import { type PeerSeen, PodShare, type SharedPod } from "./pod-share.js";
import { type HaInstance, whoAmI } from "./settings.js";
import { TunnelWatch } from "./tunnel-watch.js";

export type Role = "starting" | "active" | "standby" | "fault" | "stopped";

export interface HaStatus {
  instance: string;
  peer: string;
  role: Role;
  /** keepalived's last reported state, as it names it. */
  vrrpState?: VrrpState;
  since: string;
  transitions: number;
  /** The last takeover: how long committing connections and claiming the addresses took. */
  lastTakeover?: { at: string; commitMs: number; claimMs: number };
  /** The peer's last VRRP advertisement seen on the uplink. */
  peerAdvert?: { at: string; priority: number };
  /** The peer's daemon, last heard on the sync link. */
  peerDaemon?: { at: string; active: boolean };
  /** Kept out of the election since then: both were active with VRRP's path cut, and the peer was first. */
  yielded?: { since: string; reason: string };
  sync: { healthy: boolean; reason: string; stats?: SyncStats };
  /** Active: its connections conntrackd replicates out; standby: those replicated in, ready for a takeover. */
  replicatedConnections: number;
  addresses: { moving: string[]; held: string[] };
  podsMirrored: number;
  /** Configured tunnel devices that cannot carry traffic (the instance is out of the election while any is). */
  tunnelsDown?: string[];
  children: Record<string, { pid?: number; restarts: number }>;
}

const POLL_MS = 1000;
/** The active re-announces its addresses every this many polls. */
const ANNOUNCE_EVERY = 2;
/** At most one extra announcement per this long while the peer contests the role. */
const CONTESTED_EVERY_MS = 300;
const STATUS_FILE = "status.json";

/** Where an instance keeps its files by default: per instance, in the temporary directory. */
export function haDir(instance: string): string {
  return join(tmpdir(), `tenant-egress-ha-${instance}`);
}

export const haStatusFile = (dir: string) => join(dir, STATUS_FILE);
/** The sync link is healthy while the peer's daemon was heard this recently (it sends every second). */
const PEER_SILENT_MS = 3000;
const POD_SHARE_PORT_OFFSET = 1;

export interface HaControllerOptions {
  log: Logger;
  /** The instance's own directory (configurations, FIFO, lock, socket, status); `haDir(instance)` if absent. */
  dir?: string;
  /** The learned pods as the daemon last saw them. */
  pods: () => SharedPod[];
}

export class HaController {
  private dir = "";
  private me?: { self: HaInstance; peer: HaInstance };
  private config?: GatewayConfig;
  private uplink = "";
  private moving: MovingAddress[] = [];
  private readonly addresses: AddressShell;
  private keepalived?: Supervised;
  private conntrackd?: Supervised;
  private watcher?: Supervised;
  private tunnels?: TunnelWatch;
  private share?: PodShare;
  private fifo?: Socket;
  private poller?: NodeJS.Timeout;
  private queue = Promise.resolve();
  private renderedKeepalived = "";
  private renderedConntrackd = "";
  private stopped = false;
  /** keepalived's reports so far: a queued transition acts only if no newer one follows it. */
  private reported = 0;
  private polls = 0;
  private polling = false;
  private ctlChain = Promise.resolve();
  private lastContested = 0;
  /** performance.now() when this instance began to take over; undefined while it is not active or taking over. */
  private activeSince?: number;
  /** Epoch ms of the peer's last VRRP advertisement seen on the uplink. */
  private peerAdvertAt?: number;
  private yieldedAt?: number;
  private yieldWrite = Promise.resolve();
  private s: Omit<HaStatus, "instance" | "peer" | "children" | "podsMirrored" | "peerDaemon" | "tunnelsDown"> = {
    role: "starting",
    since: new Date().toISOString(),
    transitions: 0,
    sync: { healthy: false, reason: "not started" },
    replicatedConnections: 0,
    addresses: { moving: [], held: [] },
  };

  constructor(private readonly o: HaControllerOptions) {
    this.addresses = new AddressShell(o.log);
  }

  get role(): Role {
    return this.s.role;
  }

  private get kFiles(): KeepalivedFiles {
    return {
      config: join(this.dir, "keepalived.conf"),
      fifo: join(this.dir, "keepalived.fifo"),
      pid: join(this.dir, "keepalived.pid"),
      vrrpPid: join(this.dir, "keepalived-vrrp.pid"),
      yieldFile: join(this.dir, "yield"),
      tunnelsFile: join(this.dir, "tunnels"),
    };
  }

  private get cFiles(): ConntrackdFiles {
    return {
      config: join(this.dir, "conntrackd.conf"),
      lock: join(this.dir, "conntrackd.lock"),
      socket: join(this.dir, "conntrackd.ctl"),
    };
  }

  status(): HaStatus {
    const child = (c?: Supervised) => ({ ...(c?.pid ? { pid: c.pid } : {}), restarts: c?.restarts ?? 0 });
    const seen = this.share?.peerSeen;
    return {
      ...structuredClone(this.s),
      instance: this.me?.self.name ?? "",
      peer: this.me?.peer.name ?? "",
      ...(seen ? { peerDaemon: { at: seen.at.toISOString(), active: seen.active } } : {}),
      podsMirrored: this.share?.mirrored ?? 0,
      children: {
        keepalived: child(this.keepalived),
        conntrackd: child(this.conntrackd),
        watcher: child(this.watcher),
        "link-watch": {
          ...(this.tunnels?.pid ? { pid: this.tunnels.pid } : {}),
          restarts: this.tunnels?.restarts ?? 0,
        },
      },
      tunnelsDown: [...(this.tunnels?.down ?? [])],
    };
  }

  /** Starts the pair's machinery for `config` on `uplink` (after the daemon's first reconcile). */
  async start(config: GatewayConfig, uplink: string): Promise<void> {
    const ha = config.ha!;
    const r = await run(["ip", "-json", "-4", "address", "show", "dev", uplink]);
    const addrs = (JSON.parse(r.stdout || "[]") as Array<{ addr_info?: Array<{ local: string }> }>).flatMap((l) =>
      (l.addr_info ?? []).map((a) => a.local),
    );
    this.me = whoAmI(ha, addrs);
    this.config = config;
    this.uplink = uplink;
    this.moving = movingAddresses(config);
    this.s.addresses.moving = this.moving.map((a) => a.local);
    await this.addresses.start();
    // Whatever a killed predecessor held is not ours until keepalived says so.
    await this.addresses.release(this.moving, uplink);
    // A taken-over flow's next segment may fall outside the window the standby's copy recorded.
    await run(["sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_be_liberal=1"]);
    this.dir = this.o.dir ?? haDir(this.me.self.name);
    // Nothing of a previous run is reused: its lock, socket and FIFO belonged to dead processes.
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFile(this.kFiles.yieldFile, "0\n");
    await this.writeConfigs();
    await this.openFifo();
    const { log } = this.o;
    this.conntrackd = new Supervised({
      name: "conntrackd",
      argv: conntrackdArgv(this.cFiles),
      log,
      // A killed conntrackd leaves its lock and socket; the next one refuses to start over them.
      beforeStart: async () => {
        await rm(this.cFiles.lock, { force: true });
        await rm(this.cFiles.socket, { force: true });
      },
    });
    this.watcher = new Supervised({
      name: "advert-watch",
      // -Z root: tcpdump otherwise switches to its own user, and a process that changes user
      // loses its parent-death signal, so a killed daemon would leave it running.
      argv: [
        "tcpdump",
        "-Z",
        "root",
        "-l",
        "-n",
        "-tt",
        "-i",
        uplink,
        `ip proto 112 and src host ${this.me.peer.address}`,
      ],
      log,
      onLine: (line) => this.advertLine(line),
    });
    this.keepalived = new Supervised({
      name: "keepalived",
      argv: keepalivedArgv(this.kFiles, this.me.self.name),
      log,
      onExit: (how) => this.keepalivedDied(how),
      // keepalived refuses to start ("daemon is already running", exit 0) while the process in
      // a pid file of its predecessor exists, and a dead predecessor's VRRP process can still
      // exist: killed with its parent, it is reparented to init as a zombie and stays one until
      // init reaps it (1.3-1.6 s in the lab; never, if init is a process that reaps nothing).
      // Whatever keepalived this instance supervised is dead by now (its VRRP process dies with
      // its parent), so the files are stale.
      beforeStart: async () => {
        await rm(this.kFiles.pid, { force: true });
        await rm(this.kFiles.vrrpPid, { force: true });
      },
      // A keepalived back before the peer noticed the silence (3 × interval + skew) could win
      // the election the peer was about to: give the peer the role first.
      firstBackoffMs: 1000 + 4 * ha.advertCentiseconds * 10,
    });
    const tunnels = () => (this.config?.tenants ?? []).map((t) => tunnelDevice(t.vni));
    this.tunnels = new TunnelWatch({ file: this.kFiles.tunnelsFile, log });
    await this.conntrackd.start();
    await this.watcher.start();
    // Its file is written before keepalived first reads it.
    await this.tunnels.start(tunnels());
    await this.keepalived.start();
    this.share = new PodShare({
      self: this.me.self.name,
      bind: { address: this.me.self.syncAddress, port: ha.syncPort + POD_SHARE_PORT_OFFSET },
      peer: { address: this.me.peer.syncAddress, port: ha.syncPort + POD_SHARE_PORT_OFFSET },
      log,
      activeForMs: () => this.activeFor(),
      onPeer: (seen) => this.peerHeard(seen),
      pods: this.o.pods,
      tunnels,
    });
    await this.share.start();
    this.poller = setInterval(() => void this.poll(), POLL_MS);
    log(
      "info",
      "ha",
      `HA instance ${this.me.self.name} (priority ${this.me.self.priority}) with peer ${this.me.peer.name} at ${this.me.peer.address}; state in ${this.dir}`,
      {
        instance: this.me.self.name,
        peer: this.me.peer.name,
        dir: this.dir,
      },
    );
  }

  /** A new configuration: re-render, reload what changed, move addresses that came or went. */
  async update(config: GatewayConfig, uplink: string): Promise<void> {
    this.config = config;
    this.uplink = uplink;
    const before = this.moving;
    this.moving = movingAddresses(config);
    this.s.addresses.moving = this.moving.map((a) => a.local);
    const gone = before.filter((a) => !this.moving.some((m) => m.local === a.local));
    if (gone.length) await this.addresses.release(gone, uplink);
    await this.tunnels?.update(config.tenants.map((t) => tunnelDevice(t.vni)));
    // Neither file names a tenant: only a change of the pair itself rewrites them.
    const { keepalived, conntrackd } = await this.writeConfigs();
    // keepalived re-reads its file on SIGHUP, but with realtime scheduling its VRRP process
    // then dies (see tunnel-watch.ts) and restarts in BACKUP: changing the pair moves the role.
    // conntrackd has no reload.
    if (keepalived) this.keepalived?.signal("SIGHUP");
    if (conntrackd) this.conntrackd?.signal("SIGTERM");
    if (this.s.role === "active") await this.addresses.claim(this.moving, uplink);
  }

  /** Tells the peer at once that the learned pods changed. */
  podsChanged(): void {
    if (this.s.role === "active") this.share?.send();
  }

  /** Gives the role up (keepalived's last advertisement says priority 0: the peer takes over at once) and stops everything. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.poller);
    await this.keepalived?.stop();
    await this.queue;
    await this.ctlChain;
    await this.yieldWrite;
    if (this.uplink) await this.addresses.release(this.moving, this.uplink);
    this.s.role = "stopped";
    this.share?.stop();
    await Promise.all([this.conntrackd?.stop(), this.watcher?.stop(), this.tunnels?.stop(), this.addresses.stop()]);
    this.fifo?.destroy();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  private async writeConfigs(): Promise<{ keepalived: boolean; conntrackd: boolean }> {
    const k = renderKeepalived(this.config!.ha!, this.me!, this.uplink, this.kFiles);
    const c = renderConntrackd(this.config!.ha!, this.me!, this.cFiles);
    const changed = { keepalived: k !== this.renderedKeepalived, conntrackd: c !== this.renderedConntrackd };
    if (changed.keepalived) await writeFile(this.kFiles.config, k);
    if (changed.conntrackd) await writeFile(this.cFiles.config, c);
    this.renderedKeepalived = k;
    this.renderedConntrackd = c;
    return changed;
  }

  /**
   * keepalived writes one line per transition into the FIFO. Opened read-write and non-blocking,
   * so opening never waits for a writer and a restarted keepalived finds a reader.
   */
  private async openFifo(): Promise<void> {
    const path = this.kFiles.fifo;
    await rm(path, { force: true });
    await run(["mkfifo", "-m", "600", path]);
    // A plain descriptor, owned by the socket from here on (a FileHandle would be closed when
    // garbage-collected, silently ending the notifications).
    this.fifo = new Socket({
      fd: openSync(path, constants.O_RDWR | constants.O_NONBLOCK),
      readable: true,
      writable: false,
    });
    createInterface({ input: this.fifo }).on("line", (line) => {
      const state = parseNotify(line);
      if (state) this.enqueue(`keepalived: ${state}`, state);
    });
  }

  private advertLine(line: string): void {
    const m = /^(\d+\.\d+) .*VRRPv\d, Advertisement, vrid \d+, prio (\d+)/.exec(line);
    if (!m) return;
    this.peerAdvertAt = Number(m[1]) * 1000;
    this.s.peerAdvert = { at: new Date(this.peerAdvertAt).toISOString(), priority: Number(m[2]) };
    // VRRP's path is back: the election is keepalived's again.
    if (this.yieldedAt !== undefined && this.peerAdvertAt > this.yieldedAt)
      this.setYield(false, "the peer's VRRP advertisements are heard again");
    // Only a master advertises. Hearing the peer while active means it believes it is active
    // too (it missed our advertisements, or was partitioned) and may have announced our
    // addresses: announce them again at once, so the segment comes back to us as soon as
    // VRRP settles who is active, instead of at the next periodic announcement.
    const now = Date.now();
    const stillMaster = this.s.role === "active" && this.s.vrrpState === "MASTER" && !!this.keepalived?.pid;
    if (stillMaster && Number(m[2]) > 0 && now - this.lastContested > CONTESTED_EVERY_MS) {
      this.lastContested = now;
      this.o.log(
        "warn",
        "ha",
        `peer ${this.me?.peer.name} advertises (priority ${m[2]}) while this instance is active; announcing the addresses again`,
      );
      this.addresses.announce(this.moving, this.uplink, 1);
    }
  }

  private enqueue(why: string, state: VrrpState): void {
    const seq = ++this.reported;
    this.queue = this.queue.then(() => {
      // A loaded machine can fall behind keepalived: acting on a MASTER that keepalived has
      // already left would claim addresses the peer holds. Only the newest report counts.
      if (seq !== this.reported) {
        this.o.log("info", "ha", `${why}: superseded by a newer report before it was handled; skipped`);
        return;
      }
      return this.transition(why, state).catch((e) =>
        this.o.log("error", "ha", `${why}: handling it failed: ${(e as Error).message}`),
      );
    });
  }

  private async transition(why: string, state: VrrpState): Promise<void> {
    const was = this.s.role;
    this.s.vrrpState = state;
    const role: Role = state === "MASTER" ? "active" : state === "FAULT" ? "fault" : "standby";
    // A MASTER reported before the gateway stepped back is not acted on: keepalived follows.
    if ((this.stopped || this.yieldedAt !== undefined) && role === "active") return;
    const started = performance.now();
    const ctl = (request: CtlRequest) => conntrackdCtl(this.cFiles, request);
    if (role === "active") {
      // Said on the sync link first, so the peer hears of it at once; if it is active too and
      // told this one to step back while it was committing or claiming, it claims nothing or
      // drops what it claimed.
      // A MASTER again while active (keepalived restarted its VRRP process) is no new takeover.
      this.activeSince ??= started;
      this.share?.send();
      const commit = await ctl("-c");
      const committed = performance.now();
      if (this.yieldedAt !== undefined) return;
      await this.addresses.claim(this.moving, this.uplink);
      // Stepped back while claiming: the release may have run before the claim.
      if (this.yieldedAt !== undefined) return void (await this.addresses.release(this.moving, this.uplink));
      const claimed = performance.now();
      const at = new Date().toISOString();
      this.setRole(role);
      this.s.lastTakeover = {
        at,
        commitMs: Math.round(committed - started),
        claimMs: Math.round(claimed - committed),
      };
      this.o.log(
        "info",
        "ha",
        `${why}: now active (was ${was}); committed replicated connections in ${this.s.lastTakeover.commitMs} ms${commit.exitCode ? ` (conntrackd -c: ${commit.stderr.trim() || `exit ${commit.exitCode}`})` : ""}, claimed ${this.moving.map((a) => a.local).join(", ")} in ${this.s.lastTakeover.claimMs} ms`,
        { role, was, ...this.s.lastTakeover },
      );
      // As conntrack-tools' primary-backup script: start the caches afresh from the kernel and
      // send the peer the whole table. Not awaited: the next transition must not wait for it.
      this.followUp(["-f", "-R", "-B"]);
      return;
    }
    await this.addresses.release(this.moving, this.uplink);
    this.setRole(role);
    this.o.log(
      "info",
      "ha",
      `${why}: now ${role} (was ${was}); released ${this.moving.map((a) => a.local).join(", ")}`,
      {
        role,
        was,
      },
    );
    if (state === "STOP" && !this.stopped) return;
    // Entries the kernel still holds from an active past expire soon; then ask for the active's table.
    this.followUp(["-t", "-n"]);
  }

  /** conntrackd requests after a transition, in order among themselves, off the transition path. */
  private followUp(requests: CtlRequest[]): void {
    this.ctlChain = this.ctlChain.then(async () => {
      for (const request of requests) await conntrackdCtl(this.cFiles, request);
    });
  }

  /**
   * keepalived is gone, so nothing decides this instance is active any more: it stops being
   * active at once, outside the queue of transitions (which may be busy), and drops the
   * addresses a killed keepalived cannot drop itself; the queued STOP only records it.
   */
  private keepalivedDied(how: string): void {
    this.activeSince = undefined;
    if (this.s.role === "active") this.setRole("standby");
    this.addresses
      .release(this.moving, this.uplink)
      .catch((e) =>
        this.o.log("error", "ha", `keepalived ended (${how}): cannot release the addresses: ${(e as Error).message}`),
      );
    this.enqueue(`keepalived ended (${how})`, "STOP");
  }

  private setRole(role: Role): void {
    if (role !== this.s.role) {
      this.s.transitions++;
      this.s.since = new Date().toISOString();
      // Becoming active starts counting when the takeover begins (see transition).
      if (role !== "active") this.activeSince = undefined;
    }
    this.s.role = role;
  }

  /**
   * For how long this instance has been active, as the peer is told. Not at all while a tunnel
   * or the uplink cannot carry traffic: keepalived is already leaving MASTER then, and the
   * daemon hears of it only through the FIFO, later on a loaded node; a peer taking over
   * meanwhile must not be told to step back in favour of this one.
   */
  private activeFor(): number | undefined {
    if (this.activeSince === undefined || !this.tunnels?.carries(this.uplink)) return undefined;
    return performance.now() - this.activeSince;
  }

  /**
   * Each datagram of the peer's daemon: both active with VRRP's path cut is a split brain, and
   * the two settle it here (src/gateway/ha/contest.ts). The one that stays answers at once, so
   * the other hears it without waiting for the next periodic datagram, and takes the segment back.
   */
  private peerHeard(seen: PeerSeen): void {
    if (this.stopped) return;
    if (this.yieldedAt !== undefined && !seen.active) {
      this.setYield(false, `peer ${this.me?.peer.name} is no longer active`);
      return;
    }
    const mine = this.activeFor();
    if (mine === undefined || !seen.active || seen.activeForMs === undefined) return;
    const now = Date.now();
    const windowMs = Math.max(1000, 3 * this.config!.ha!.advertCentiseconds * 10);
    if (vrrpPathWorks(this.peerAdvertAt, now - mine, now, windowMs)) return;
    const { self, peer } = this.me!;
    const contenders = [
      { name: self.name, priority: self.priority, activeForMs: mine },
      { name: peer.name, priority: peer.priority, activeForMs: seen.activeForMs },
    ] as const;
    if (shouldYield(...contenders)) {
      this.setYield(
        true,
        `both active with no VRRP advertisement of ${peer.name} heard; it has been active for ${seen.activeForMs} ms, this instance for ${Math.round(mine)} ms`,
      );
      return;
    }
    if (now - this.lastContested <= CONTESTED_EVERY_MS) return;
    this.lastContested = now;
    this.o.log(
      "warn",
      "ha",
      `peer ${peer.name} says it is active too and its VRRP advertisements are not heard; this instance was first and stays active`,
    );
    this.share?.send();
    // While both were active, the peer replicated the connections it opened into this one's
    // external cache: into the kernel with them before the segment comes back here, or their
    // packets would meet a stack that never saw them and be answered with resets.
    this.followUp(["-c"]);
    this.ctlChain = this.ctlChain.then(() => this.addresses.announce(this.moving, this.uplink, 1));
  }

  /**
   * Keeps this instance out of the election (keepalived tracks the file and goes to FAULT) or
   * lets it back in. Stepping back drops the addresses at once, as keepalived's FAULT would a
   * moment later: the peer is already forwarding.
   */
  private setYield(on: boolean, reason: string): void {
    if (on === (this.yieldedAt !== undefined)) return;
    this.yieldedAt = on ? Date.now() : undefined;
    if (on) {
      this.s.yielded = { since: new Date().toISOString(), reason };
      this.setRole("fault");
      this.addresses
        .release(this.moving, this.uplink)
        .catch((e) =>
          this.o.log("error", "ha", `stepping back: cannot release the addresses: ${(e as Error).message}`),
        );
    } else delete this.s.yielded;
    this.o.log(
      on ? "warn" : "info",
      "ha",
      on ? `split brain: stepping back (${reason})` : `back in the election: ${reason}`,
    );
    const file = this.kFiles.yieldFile;
    this.yieldWrite = this.yieldWrite
      .then(() => writeFile(file, on ? "1\n" : "0\n"))
      .catch((e) => this.o.log("error", "ha", `cannot write ${file}: ${(e as Error).message}`));
  }

  private async poll(): Promise<void> {
    // A peer that fell silent while this instance stood back may be dead: be ready to take over.
    const seen = this.share?.peerSeen;
    if (this.yieldedAt !== undefined && (!seen || Date.now() - seen.at.getTime() > PEER_SILENT_MS))
      this.setYield(false, `peer ${this.me?.peer.name}'s daemon is silent on the sync link`);
    if (this.s.role === "active" && ++this.polls % ANNOUNCE_EVERY === 0)
      this.addresses.announce(this.moving, this.uplink, 1);
    // On a loaded node one reading can outlast the interval: never two at once.
    if (this.polling) return;
    this.polling = true;
    try {
      await this.readStatus();
    } finally {
      this.polling = false;
    }
  }

  private async readStatus(): Promise<void> {
    try {
      const [stats, have] = await Promise.all([
        conntrackdCtl(this.cFiles, "-s").then((r) => (r.exitCode ? undefined : parseSyncStats(r.stdout))),
        held(this.moving, this.uplink),
      ]);
      this.s.addresses.held = have;
      const seen = this.share?.peerSeen;
      const silentMs = seen ? Date.now() - seen.at.getTime() : Number.POSITIVE_INFINITY;
      this.s.sync = !stats
        ? { healthy: false, reason: "conntrackd does not answer" }
        : silentMs > PEER_SILENT_MS
          ? {
              healthy: false,
              reason: `the peer's daemon has not been heard on the sync link${seen ? ` for ${Math.round(silentMs / 1000)} s` : ""}`,
              stats,
            }
          : { healthy: true, reason: "conntrackd runs and the peer answers on the sync link", stats };
      // The active replicates its own connections out; the standby holds the active's.
      this.s.replicatedConnections = (this.s.role === "active" ? stats?.internal : stats?.external) ?? 0;
    } catch (e) {
      this.s.sync = { healthy: false, reason: (e as Error).message };
    }
    if (this.stopped) return;
    // For `status`, which runs as its own process: written whole, then renamed into place.
    const file = join(this.dir, STATUS_FILE);
    try {
      await writeFile(`${file}.tmp`, JSON.stringify(this.status()));
      await rename(`${file}.tmp`, file);
    } catch (e) {
      if (!this.stopped) this.o.log("warn", "ha", `cannot write ${file}: ${(e as Error).message}`);
    }
  }
}
