/**
 * What `status` shows of a pair. `status` is its own short-lived process and cannot ask the
 * daemon, so it reads the status file the daemon's HA controller rewrites every second in its
 * directory (found, like the daemon finds itself, by the uplink's address), and says how old
 * that file is: a stale file means the daemon is not running, which is itself the answer.
 */
import { readFile, stat } from "node:fs/promises";
import { run } from "../../net/run.js";
import type { GatewayConfig } from "../config.js";
import { type HaStatus, haDir, haStatusFile } from "./controller.js";
import { whoAmI } from "./settings.js";

export interface HaReport {
  status?: HaStatus;
  /** Seconds since the daemon last wrote it. */
  ageSeconds?: number;
  /** Why there is no status to show. */
  missing?: string;
}

export async function readHaStatus(
  config: GatewayConfig,
  uplink: string,
  o: { netns?: string; dir?: string },
): Promise<HaReport> {
  const r = await run(["ip", "-json", "-4", "address", "show", "dev", uplink], o.netns ? { netns: o.netns } : {});
  const addrs = (JSON.parse(r.stdout || "[]") as Array<{ addr_info?: Array<{ local: string }> }>).flatMap((l) =>
    (l.addr_info ?? []).map((a) => a.local),
  );
  const file = haStatusFile(o.dir ?? haDir(whoAmI(config.ha!, addrs).self.name));
  try {
    const [text, st] = await Promise.all([readFile(file, "utf8"), stat(file)]);
    return { status: JSON.parse(text) as HaStatus, ageSeconds: (Date.now() - st.mtimeMs) / 1000 };
  } catch (e) {
    return { missing: `no HA status in ${file} (is \`run\` running here?): ${(e as Error).message}` };
  }
}

export function describeHa(report: HaReport, now = Date.now()): string {
  const h = report.status;
  if (!h) return `ha: ${report.missing}`;
  const ago = (iso: string) => `${Math.max(0, (now - Date.parse(iso)) / 1000).toFixed(1)} s ago`;
  const stale =
    (report.ageSeconds ?? 0) > 5
      ? ` (WARNING: written ${report.ageSeconds!.toFixed(0)} s ago: the daemon may not be running)`
      : "";
  const out = [
    ...(h.yielded ? [`    out of the election since ${h.yielded.since} (split brain): ${h.yielded.reason}`] : []),
    ...(h.tunnelsDown?.length
      ? [`    out of the election: tunnel ${h.tunnelsDown.join(", ")} cannot carry traffic`]
      : []),
  ];
  return [
    `ha: instance ${h.instance} is ${h.role}${h.vrrpState ? ` (keepalived ${h.vrrpState})` : ""} since ${h.since}, ${h.transitions} role change${h.transitions === 1 ? "" : "s"}${stale}`,
    `    peer ${h.peer}: ${h.peerAdvert ? `last VRRP advertisement ${ago(h.peerAdvert.at)} at priority ${h.peerAdvert.priority}` : "no VRRP advertisement seen"}; its daemon ${h.peerDaemon ? `last heard on the sync link ${ago(h.peerDaemon.at)}` : "not heard on the sync link"}`,
    `    sync ${h.sync.healthy ? "healthy" : `UNHEALTHY: ${h.sync.reason}`}; ${h.replicatedConnections} replicated connection${h.replicatedConnections === 1 ? "" : "s"}${h.sync.stats ? `, ${h.sync.stats.lost} lost sync messages` : ""}; ${h.podsMirrored} pods mirrored from the peer`,
    `    holds ${h.addresses.held.length} of ${h.addresses.moving.length} moving addresses${h.addresses.held.length ? ` (${h.addresses.held.join(", ")})` : ""}${h.lastTakeover ? `; last takeover ${h.lastTakeover.at}: commit ${h.lastTakeover.commitMs} ms, claim ${h.lastTakeover.claimMs} ms` : ""}`,
    ...out,
  ].join("\n");
}
