/**
 * conntrackd replicates connection tracking, NAT bindings included, from the active instance to
 * the standby, so a taken-over flow finds its translation and its state instead of being reset
 * by a stack that never saw it. FT-FW mode (acknowledged, resent on loss) over UDP on the
 * dedicated sync link; TCP, UDP and ICMP (the sample configuration replicates TCP only); an
 * external cache on the standby, committed into the kernel when it becomes active. Its lock
 * file and control socket live in the instance's own directory: two instances on one host (the
 * lab) or a leftover of a crashed run must never meet on a shared path.
 */
import { createConnection } from "node:net";
import { endianness } from "node:os";
import type { RunResult } from "../../net/run.js";
import type { HaInstance, HaSettings } from "./settings.js";

export interface ConntrackdFiles {
  config: string;
  lock: string;
  socket: string;
}

export function renderConntrackd(
  ha: HaSettings,
  me: { self: HaInstance; peer: HaInstance },
  files: ConntrackdFiles,
): string {
  // The pair's own traffic (VRRP, VXLAN to the shared address, the sync link) is no tenant's
  // connection: replicating it would only fill the other side's table.
  const ignored = ["127.0.0.1", me.self.address, me.self.syncAddress, ha.vip];
  return `# Rendered by tenant-egress-gateway from its configuration; rewritten on every change.
Sync {
  Mode FTFW {
    StartupResync on
  }
  UDP {
    IPv4_address ${me.self.syncAddress}
    IPv4_Destination_Address ${me.peer.syncAddress}
    Port ${ha.syncPort}
    Interface ${ha.syncInterface}
    Checksum on
  }
}

General {
  HashSize 16384
  HashLimit 262144
  LogFile off
  Syslog off
  LockFile ${files.lock}
  UNIX {
    Path ${files.socket}
  }
  NetlinkBufferSize 2097152
  NetlinkBufferSizeMaxGrowth 8388608
  Filter From Userspace {
    Protocol Accept {
      TCP
      UDP
      ICMP
    }
    Address Ignore {
${ignored.map((a) => `      IPv4_address ${a}`).join("\n")}
    }
  }
}
`;
}

export const conntrackdArgv = (files: ConntrackdFiles) => ["conntrackd", "-C", files.config];

/**
 * The control requests the gateway makes, by conntrackd's own client flags, and the request code
 * each one puts on the control socket. conntrackd's client (`conntrackd -C <file> -c`) connects
 * to the UNIX socket, writes the code as one native-endian int and prints what comes back until
 * the daemon closes the connection; a commit's connection stays open until the commit is done.
 * The gateway speaks that protocol itself: a request through the client is a process the daemon
 * has to start (a fork of the daemon itself, then the client's own start), which on a busy node
 * took 0.2-1.8 s of a takeover's commit. The codes are conntrack-tools 1.4's (read off the wire
 * of Debian's 1.4.7 client; test/unit/gateway/ha/conntrackd-ctl.test.ts checks them against the
 * installed client).
 */
export const CTL_REQUESTS = {
  /** Commit the external cache (the peer's connections) into the kernel. */
  "-c": 0x2e,
  /** Statistics. */
  "-s": 0x15,
  /** Flush the internal and external caches. */
  "-f": 0x2d,
  /** Resync the internal cache with the kernel's table. */
  "-R": 0x2c,
  /** Send the whole internal cache to the peer. */
  "-B": 0x16,
  /** Shorten the kernel entries' timers (a former active's entries expire soon). */
  "-t": 0x1a,
  /** Ask the peer for its whole table. */
  "-n": 0x17,
} as const;

export type CtlRequest = keyof typeof CTL_REQUESTS;

/** A conntrackd that does not answer must not hold up a takeover or a status reading for long. */
const CTL_TIMEOUT_MS = 5000;

/**
 * One control request to the running conntrackd, on its UNIX socket. Resolves with what it
 * answered, or a non-zero exitCode and the reason (it does not run, it did not answer in time);
 * never rejects.
 */
export function conntrackdCtl(files: ConntrackdFiles, request: CtlRequest): Promise<RunResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const done = (exitCode: number, stderr = "") => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ stdout: Buffer.concat(chunks).toString("utf8"), stderr, exitCode });
    };
    const socket = createConnection(files.socket);
    const timer = setTimeout(
      () => done(124, `conntrackd did not answer ${request} within ${CTL_TIMEOUT_MS} ms`),
      CTL_TIMEOUT_MS,
    );
    const code = Buffer.alloc(4);
    if (endianness() === "LE") code.writeInt32LE(CTL_REQUESTS[request]);
    else code.writeInt32BE(CTL_REQUESTS[request]);
    socket.on("connect", () => socket.write(code));
    socket.on("data", (d) => chunks.push(d));
    socket.on("end", () => done(0));
    socket.on("error", (e) => done(1, `conntrackd ${request}: ${e.message}`));
  });
}

export interface SyncStats {
  /** Connections this instance tracks itself (its kernel's, as conntrackd follows them). */
  internal: number;
  /** Connections replicated from the peer, ready to be committed on takeover. */
  external: number;
  sent: number;
  received: number;
  sendErrors: number;
  receiveErrors: number;
  lost: number;
}

/** Reads `conntrackd -s`'s text. */
export function parseSyncStats(text: string): SyncStats | undefined {
  const section = (name: string) => new RegExp(`cache ${name}:\\s*current active connections:\\s*(\\d+)`).exec(text);
  const internal = section("internal");
  const external = section("external");
  if (!internal || !external) return undefined;
  const traffic =
    /UDP traffic[^\n]*\n\s*\d+ Bytes sent\s+\d+ Bytes recv\s*\n\s*(\d+) Pckts sent\s+(\d+) Pckts recv\s*\n\s*(\d+) Error send\s+(\d+) Error recv/.exec(
      text,
    );
  const lost = /(\d+) Lost msgs/.exec(text);
  return {
    internal: Number(internal[1]),
    external: Number(external[1]),
    sent: Number(traffic?.[1] ?? 0),
    received: Number(traffic?.[2] ?? 0),
    sendErrors: Number(traffic?.[3] ?? 0),
    receiveErrors: Number(traffic?.[4] ?? 0),
    lost: Number(lost?.[1] ?? 0),
  };
}
