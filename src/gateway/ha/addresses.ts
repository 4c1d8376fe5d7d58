/**
 * The addresses that move between the two instances: the shared underlay address (pods' tunnels
 * point at it) and each tenant's egress address (the internet answers to it). Whoever is active
 * holds all of them on the uplink, the standby none; after adding them the new holder announces
 * them with gratuitous ARP, so the segment's router and switches send to it at once instead of
 * after their neighbour entries age out (tens of seconds), and keeps announcing them while it is
 * active (`announce`), so that a peer that held them for a moment (a split brain that healed)
 * cannot keep the segment sending to it. Removal is unconditional and
 * idempotent: it runs on every step down, whenever keepalived dies, and before anything else at
 * start, because addresses left by a killed process would leave two holders.
 */
import { spawn } from "node:child_process";
import { run } from "../../net/run.js";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../log.js";

export interface MovingAddress {
  local: string;
  prefix: number;
}

export function movingAddresses(config: GatewayConfig): MovingAddress[] {
  const ha = config.ha!;
  const egress = [...new Set(config.tenants.map((t) => t.snat))].map((local) => ({ local, prefix: 32 }));
  return [{ local: ha.vip, prefix: ha.vipPrefix }, ...egress];
}

const nsOpt = (netns?: string) => (netns ? { netns } : {});

export async function claim(
  addrs: readonly MovingAddress[],
  uplink: string,
  log: Logger,
  netns?: string,
): Promise<void> {
  await run(["ip", "-batch", "-"], {
    ...nsOpt(netns),
    input: `${addrs.map((a) => `address replace ${a.local}/${a.prefix} dev ${uplink}`).join("\n")}\n`,
  });
  announce(addrs, uplink, log, 2, netns);
}

/**
 * Gratuitous ARP for each address, `count` a second apart (arping's own pacing); the first
 * leaves at once, so a takeover does not wait for the rest. One process starts them all: each
 * process the daemon starts holds up its event loop for a moment, longest on a loaded node and
 * right when a takeover needs it.
 */
export function announce(
  addrs: readonly MovingAddress[],
  uplink: string,
  log: Logger,
  count: number,
  netns?: string,
): void {
  const script =
    'c=$0 i=$1; shift; p=; for a; do arping -q -U -c "$c" -I "$i" -s "$a" "$a" & p="$p $!"; done; s=0; for j in $p; do wait "$j" || s=1; done; exit $s';
  const argv = ["sh", "-c", script, String(count), uplink, ...addrs.map((a) => a.local)];
  const full = netns ? ["nsenter", `--net=${netns}`, "--", ...argv] : argv;
  const what = `gratuitous ARP for ${addrs.map((a) => a.local).join(", ")} on ${uplink}`;
  const child = spawn(full[0]!, full.slice(1), { stdio: "ignore" });
  child.on("error", (e) => log("error", "announce", `cannot send ${what}: ${e.message}`));
  child.on("close", (code) => {
    if (code) log("warn", "announce", `${what}: an arping failed (exit ${code})`);
  });
}

export async function release(addrs: readonly MovingAddress[], uplink: string, netns?: string): Promise<void> {
  await run(["ip", "-force", "-batch", "-"], {
    ...nsOpt(netns),
    allowFailure: true,
    input: `${addrs.map((a) => `address del ${a.local}/${a.prefix} dev ${uplink}`).join("\n")}\n`,
  });
}

/** Which of `addrs` the uplink holds now. */
export async function held(addrs: readonly MovingAddress[], uplink: string, netns?: string): Promise<string[]> {
  const r = await run(["ip", "-json", "-4", "address", "show", "dev", uplink], nsOpt(netns));
  const have = new Set(
    (JSON.parse(r.stdout || "[]") as Array<{ addr_info?: Array<{ local: string }> }>).flatMap((l) =>
      (l.addr_info ?? []).map((a) => a.local),
    ),
  );
  return addrs.filter((a) => have.has(a.local)).map((a) => a.local);
}
