/**
 * keepalived decides the role, and only the role. It runs VRRPv3 (sub-second advertisements:
 * v2 rounds 0.1 s up to 1 s, and takeover is 3 × interval + skew), unicast to the peer on the
 * uplink (nothing is multicast, nothing leaves the segment), starting as BACKUP with no
 * preemption unless asked. It tracks its own interface (the uplink), and two files the gateway
 * writes, either of which puts it in FAULT, so that it gives the role up: one says a tunnel
 * device cannot carry traffic (src/gateway/ha/tunnel-watch.ts; kept out of this file so that a
 * tenant added or removed never makes keepalived reload), the other that the gateway settled a
 * split brain against this instance (src/gateway/ha/contest.ts). Nothing here depends on the
 * tenants. The addresses pods and the internet use are not
 * keepalived's: it holds one marker address on the loopback device, because it refuses to run an
 * instance without one, and reports each transition into a FIFO the gateway reads. The gateway
 * then moves the real addresses itself, in the order connections need (conntrack state first,
 * addresses second), and removes them whenever keepalived dies: a SIGKILLed keepalived leaves
 * its addresses in place, which would leave two holders.
 */
import type { HaInstance, HaSettings } from "./settings.js";

export type VrrpState = "MASTER" | "BACKUP" | "FAULT" | "STOP";

export interface KeepalivedFiles {
  config: string;
  fifo: string;
  pid: string;
  vrrpPid: string;
  /** Holds 0, or 1 while the gateway keeps this instance out of the election. */
  yieldFile: string;
  /** Holds 0, or 1 while a tunnel device cannot carry traffic. */
  tunnelsFile: string;
}

/** On the loopback device, inside the gateway's namespace only; never routed, never announced. */
export function markerAddress(ha: HaSettings): string {
  return `127.255.0.${ha.virtualRouterId}`;
}

export function renderKeepalived(
  ha: HaSettings,
  me: { self: HaInstance; peer: HaInstance },
  uplink: string,
  files: KeepalivedFiles,
): string {
  const seconds = (ha.advertCentiseconds / 100).toFixed(2);
  return `# Rendered by tenant-egress-gateway from its configuration; rewritten on every change.
global_defs {
  router_id ${me.self.name}
  vrrp_version 3
  notify_fifo ${files.fifo}
  # Sub-second advertisements must not wait behind a busy node's other work.
  vrrp_rt_priority 50
}

track_file yield {
  file "${files.yieldFile}"
  weight 0
}

track_file tunnels {
  file "${files.tunnelsFile}"
  weight 0
}

vrrp_instance tenant-egress {
  state BACKUP
  interface ${uplink}
  virtual_router_id ${ha.virtualRouterId}
  priority ${me.self.priority}
  advert_int ${seconds}
${ha.preempt ? "" : "  nopreempt\n"}  unicast_src_ip ${me.self.address}
  unicast_peer {
    ${me.peer.address}
  }
  track_file {
    yield
    tunnels
  }
  virtual_ipaddress {
    ${markerAddress(ha)}/32 dev lo
  }
}
`;
}

export function keepalivedArgv(files: KeepalivedFiles, instance: string): string[] {
  return [
    "keepalived",
    "--dont-fork",
    "--log-console",
    "--vrrp",
    "--use-file",
    files.config,
    "--pid",
    files.pid,
    "--vrrp_pid",
    files.vrrpPid,
    // Keeps the files keepalived writes on signals apart from another instance's on this host.
    "--config-id",
    instance,
  ];
}

/** `INSTANCE "tenant-egress" MASTER 150` → MASTER; undefined for lines about anything else. */
export function parseNotify(line: string): VrrpState | undefined {
  const m = /^INSTANCE "tenant-egress" (MASTER|BACKUP|FAULT|STOP)\b/.exec(line.trim());
  return m?.[1] as VrrpState | undefined;
}
