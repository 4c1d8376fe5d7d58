/**
 * conntrackd replicates connection tracking, NAT bindings included, from the active instance to
 * the standby, so a taken-over flow finds its translation and its state instead of being reset
 * by a stack that never saw it. FT-FW mode (acknowledged, resent on loss) over UDP on the
 * dedicated sync link; TCP, UDP and ICMP (the sample configuration replicates TCP only); an
 * external cache on the standby, committed into the kernel when it becomes active. Its lock
 * file and control socket live in the instance's own directory: two instances on one host (the
 * lab) or a leftover of a crashed run must never meet on a shared path.
 */
import { type RunResult, run } from "../../net/run.js";
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

/** A conntrackd that does not answer must not hold up a takeover or a status reading for long. */
const CTL_TIMEOUT_S = 5;

/** One control request to the running conntrackd (through its UNIX socket). */
export async function conntrackdCtl(files: ConntrackdFiles, flag: string, netns?: string): Promise<RunResult> {
  return run(["timeout", String(CTL_TIMEOUT_S), "conntrackd", "-C", files.config, flag], {
    allowFailure: true,
    ...(netns ? { netns } : {}),
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
