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
 *
 * The changes are made by one shell the instance starts once and keeps (`AddressShell`), not by
 * a process started for each: every process the daemon starts is a fork of the daemon, and
 * libuv's spawn holds the daemon's event loop until the child has exec'd. In the lab at load 5-8
 * that is tens to hundreds of milliseconds per process, and a claim started that way took up to
 * 0.7 s of a takeover; a line written to the shell costs the daemon nothing, and the shell's own
 * forks of `ip` and `arping` are cheap. If the shell is not running (it is restarted when it
 * dies), the same script runs once for the request.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { run } from "../../net/run.js";
import type { GatewayConfig } from "../config.js";
import type { Logger } from "../log.js";
import { Supervised } from "./child.js";

export interface MovingAddress {
  local: string;
  prefix: number;
}

export function movingAddresses(config: GatewayConfig): MovingAddress[] {
  const ha = config.ha!;
  const egress = [...new Set(config.tenants.map((t) => t.snat))].map((local) => ({ local, prefix: 32 }));
  return [{ local: ha.vip, prefix: ha.vipPrefix }, ...egress];
}

/**
 * Reads requests `<id> claim|release|announce <device> <count> <address/prefix>…`, one a line.
 * claim and release add (replace) or delete the addresses in one `ip -batch` and answer
 * `<id> <ip's exit status> <its errors on one line>`; claim and announce then send `count`
 * gratuitous ARPs for each address, a second apart (arping's pacing), all addresses at once and
 * in the background, so the next request is not held up: `<id> arping-failed` if one failed.
 * Globbing is off: the errors are echoed unquoted to make them one line. The shell makes itself
 * a realtime process below keepalived's priority (its `ip` and `arping` inherit it): on a busy
 * node its forks otherwise wait for a CPU (in the lab at load 11-14, 0.3 s from a commit to the
 * first announcement); where that is not allowed it stays as it is.
 */
const SCRIPT = `chrt -f -p 10 $$ >/dev/null 2>&1 || :
set -f
while read -r id verb dev count addrs; do
  s=0 err=
  if [ "$verb" != announce ]; then
    op=replace; [ "$verb" = release ] && op=del
    err=$( { for a in $addrs; do echo "address $op $a dev $dev"; done | ip -force -batch - >/dev/null; } 2>&1 )
    s=$?
    echo "$id $s" $err
  fi
  if [ "$verb" != release ] && [ "$s" = 0 ]; then
    ( p=; for a in $addrs; do a=\${a%/*}; arping -q -U -c "$count" -I "$dev" -s "$a" "$a" </dev/null & p="$p $!"; done
      f=0; for j in $p; do wait "$j" || f=1; done; [ $f = 0 ] || echo "$id arping-failed" ) &
  fi
done
`;

type Verb = "claim" | "release" | "announce";
interface Answer {
  status: number;
  errors: string;
}

export class AddressShell {
  private readonly shell: Supervised;
  private next = 0;
  /** Requests written to the shell and not answered yet, with their line (to run again if it dies). */
  private readonly pending = new Map<number, { line: string; answer: (a: Answer) => void }>();

  constructor(private readonly log: Logger) {
    this.shell = new Supervised({
      name: "address-shell",
      argv: ["sh", "-c", SCRIPT],
      log,
      input: true,
      onLine: (line) => this.heard(line),
      // What it may not have done yet is done once more by a shell of its own (every request is idempotent).
      onExit: () => {
        const left = [...this.pending.values()];
        this.pending.clear();
        for (const p of left) void this.once(p.line).then(p.answer);
      },
    });
  }

  start(): Promise<void> {
    return this.shell.start();
  }

  stop(): Promise<void> {
    return this.shell.stop();
  }

  /** Adds the addresses and announces them twice; resolves once they are held, rejects if they could not be added. */
  async claim(addrs: readonly MovingAddress[], uplink: string): Promise<void> {
    const a = await this.request("claim", uplink, 2, addrs);
    if (a.status !== 0)
      throw new Error(
        `cannot add ${addrs.map((x) => x.local).join(", ")} to ${uplink} (ip exit ${a.status}): ${a.errors || "no output"}`,
      );
  }

  /** Removes the addresses (those it does not hold are no error). */
  async release(addrs: readonly MovingAddress[], uplink: string): Promise<void> {
    await this.request("release", uplink, 0, addrs);
  }

  /** Gratuitous ARP for each address, `count` a second apart; the first leaves at once. */
  announce(addrs: readonly MovingAddress[], uplink: string, count: number): void {
    void this.request("announce", uplink, count, addrs);
  }

  private request(verb: Verb, dev: string, count: number, addrs: readonly MovingAddress[]): Promise<Answer> {
    const id = ++this.next;
    const line = `${id} ${verb} ${dev} ${count} ${addrs.map((a) => `${a.local}/${a.prefix}`).join(" ")}\n`;
    // An announcement has no answer to wait for.
    if (verb === "announce") {
      if (!this.shell.write(line)) void this.once(line);
      return Promise.resolve({ status: 0, errors: "" });
    }
    return new Promise((answer) => {
      this.pending.set(id, { line, answer });
      if (this.shell.write(line)) return;
      this.pending.delete(id);
      void this.once(line).then(answer);
    });
  }

  private heard(line: string): void {
    const failed = /^(\d+) arping-failed$/.exec(line);
    if (failed) {
      this.log("warn", "announce", `gratuitous ARP (request ${failed[1]}): an arping failed`);
      return;
    }
    const m = /^(\d+) (\d+) ?(.*)$/.exec(line);
    const p = m && this.pending.get(Number(m[1]));
    if (!m || !p) {
      this.log("info", "address-shell", `address-shell: ${line}`);
      return;
    }
    this.pending.delete(Number(m[1]));
    p.answer({ status: Number(m[2]), errors: m[3]! });
  }

  /** The script run for one request by a shell of its own; resolves with its answer. */
  private once(line: string): Promise<Answer> {
    return new Promise((resolve) => {
      let answer: Answer = { status: -1, errors: "the shell ended without answering" };
      const child = spawn("sh", ["-c", SCRIPT], { stdio: ["pipe", "pipe", "pipe"] });
      child.on("error", (e) => {
        answer = { status: -1, errors: e.message };
      });
      createInterface({ input: child.stdout! }).on("line", (l) => {
        const m = /^\d+ (\d+) ?(.*)$/.exec(l);
        if (m) resolve({ status: Number(m[1]), errors: m[2]! });
        else this.heard(l);
      });
      child.on("close", () => resolve(answer));
      child.stdin!.on("error", () => {});
      child.stdin!.end(line);
    });
  }
}

/** Which of `addrs` the uplink holds now. */
export async function held(addrs: readonly MovingAddress[], uplink: string): Promise<string[]> {
  const r = await run(["ip", "-json", "-4", "address", "show", "dev", uplink]);
  const have = new Set(
    (JSON.parse(r.stdout || "[]") as Array<{ addr_info?: Array<{ local: string }> }>).flatMap((l) =>
      (l.addr_info ?? []).map((a) => a.local),
    ),
  );
  return addrs.filter((a) => have.has(a.local)).map((a) => a.local);
}
