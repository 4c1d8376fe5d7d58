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

/**
 * Gratuitous ARP for each address given as a positional parameter, `$c` of them a second apart
 * (arping's own pacing) on `$i`, all addresses at once; the shell exits non-zero if any failed.
 */
const ARPINGS =
  'p=; for a; do arping -q -U -c "$c" -I "$i" -s "$a" "$a" & p="$p $!"; done; s=0; for j in $p; do wait "$j" || s=1; done; exit $s';

/** `sh -c <script> <count> <uplink> <addresses…>`, inside `netns` if given. */
function shArgv(script: string, count: number, uplink: string, addrs: readonly MovingAddress[], netns?: string) {
  const argv = ["sh", "-c", `c=$0 i=$1; shift; ${script}`, String(count), uplink, ...addrs.map((a) => a.local)];
  return netns ? ["nsenter", `--net=${netns}`, "--", ...argv] : argv;
}

const what = (addrs: readonly MovingAddress[], uplink: string) =>
  `gratuitous ARP for ${addrs.map((a) => a.local).join(", ")} on ${uplink}`;

/**
 * Adds the addresses and announces them, in one process the daemon starts: a takeover waits for
 * every process the daemon starts (each is a fork of the daemon, done on its main thread, and
 * on a busy node a process's start is most of a takeover), so the shell adds the addresses with
 * `ip -batch`, says so, and goes on to the announcements. Resolves once the addresses are held;
 * rejects if they could not be added.
 */
export function claim(addrs: readonly MovingAddress[], uplink: string, log: Logger, netns?: string): Promise<void> {
  const argv = shArgv(`ip -batch - || exit 2; echo claimed; ${ARPINGS}`, 2, uplink, addrs, netns);
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    let claimed = false;
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
    child.stdout.on("data", (d) => {
      out += d;
      if (!claimed && out.includes("claimed\n")) {
        claimed = true;
        resolve();
      }
    });
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("error", (e) => {
      if (!claimed) reject(new Error(`cannot add ${addrs.map((a) => a.local).join(", ")}: ${e.message}`));
    });
    child.on("close", (code) => {
      if (!claimed)
        reject(
          new Error(
            `ip -batch (address replace ${addrs.map((a) => a.local).join(", ")} dev ${uplink}) failed (exit ${code}): ${err.trim() || "no output"}`,
          ),
        );
      else if (code) log("warn", "announce", `${what(addrs, uplink)}: an arping failed (exit ${code})`);
    });
    // A shell that died before reading its input is reported by "close"; the write must not throw.
    child.stdin.on("error", () => {});
    child.stdin.end(`${addrs.map((a) => `address replace ${a.local}/${a.prefix} dev ${uplink}`).join("\n")}\n`);
  });
}

/**
 * Gratuitous ARP for each address, `count` a second apart; the first leaves at once. One
 * process starts them all (see claim: every process the daemon starts holds up its event loop).
 */
export function announce(
  addrs: readonly MovingAddress[],
  uplink: string,
  log: Logger,
  count: number,
  netns?: string,
): void {
  const argv = shArgv(ARPINGS, count, uplink, addrs, netns);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: "ignore" });
  child.on("error", (e) => log("error", "announce", `cannot send ${what(addrs, uplink)}: ${e.message}`));
  child.on("close", (code) => {
    if (code) log("warn", "announce", `${what(addrs, uplink)}: an arping failed (exit ${code})`);
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
