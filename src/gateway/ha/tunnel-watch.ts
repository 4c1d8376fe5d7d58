/**
 * An instance that lost a tunnel device cannot serve that tenant, so it must give the role up;
 * keepalived's own `track_interface` would do it, but it names every tunnel in keepalived's
 * configuration, and then adding a tenant means reloading keepalived — which, with realtime
 * scheduling, leaves its VRRP process without any realtime CPU allowance (keepalived 2.2.7
 * resets RLIMIT_RTTIME to 0 on reload and cannot raise it again without CAP_SYS_RESOURCE), so the
 * kernel kills it and the role moves. So the gateway watches the tunnels itself (`ip monitor
 * link`, as keepalived would through netlink) and writes one number into a file keepalived
 * tracks: 1 while any configured tunnel is missing, down or without carrier, else 0. A
 * configuration change only changes the list watched; keepalived's file stays the same. It
 * also says whether the uplink can carry traffic, which keepalived tracks itself.
 */
import { writeFile } from "node:fs/promises";
import { run } from "../../net/run.js";
import type { Logger } from "../log.js";
import { Supervised } from "./child.js";

/** `3: tev300: <BROADCAST,MULTICAST,UP,LOWER_UP> …` (or `Deleted 3: …`) → its name and whether it can carry traffic. */
export function parseLinkLine(line: string): { dev: string; ok: boolean } | undefined {
  const m = /^(Deleted )?\d+: ([^:@\s]+)(?:@\S+)?: <([^>]*)>/.exec(line);
  if (!m) return undefined;
  const flags = m[3]!.split(",");
  return {
    dev: m[2]!,
    ok: !m[1] && flags.includes("UP") && flags.includes("LOWER_UP") && !flags.includes("NO-CARRIER"),
  };
}

export class TunnelWatch {
  private monitor?: Supervised;
  private tunnels: string[] = [];
  private state = new Map<string, boolean>();
  private written?: boolean;
  private writing = Promise.resolve();
  /** The configured tunnels that cannot carry traffic now. */
  down: string[] = [];

  constructor(private readonly o: { file: string; log: Logger }) {}

  /** Whether no configured tunnel is down and `dev` (the uplink) can carry traffic, as last seen. */
  carries(dev: string): boolean {
    return this.down.length === 0 && this.state.get(dev) === true;
  }

  get pid(): number | undefined {
    return this.monitor?.pid;
  }

  get restarts(): number {
    return this.monitor?.restarts ?? 0;
  }

  /** Writes the file for `tunnels` as they are now, then follows their changes. */
  async start(tunnels: readonly string[]): Promise<void> {
    this.monitor = new Supervised({
      name: "link-watch",
      argv: ["ip", "-o", "monitor", "link"],
      log: this.o.log,
      onLine: (line) => {
        const l = parseLinkLine(line);
        if (!l) return;
        this.state.set(l.dev, l.ok);
        if (this.tunnels.includes(l.dev)) this.evaluate();
      },
      // Events between a restart and its first line are missed: read the devices again.
      beforeStart: () => this.read(),
    });
    this.tunnels = [...tunnels];
    await this.monitor.start();
    await this.writing;
  }

  /** A new configuration's tunnels (the daemon has already created them). */
  async update(tunnels: readonly string[]): Promise<void> {
    this.tunnels = [...tunnels];
    await this.read();
    await this.writing;
  }

  async stop(): Promise<void> {
    await this.monitor?.stop();
    await this.writing;
  }

  private async read(): Promise<void> {
    const r = await run(["ip", "-o", "link", "show"]);
    this.state = new Map();
    for (const line of r.stdout.split("\n")) {
      const l = parseLinkLine(line);
      if (l) this.state.set(l.dev, l.ok);
    }
    this.evaluate();
  }

  private evaluate(): void {
    this.down = this.tunnels.filter((t) => !this.state.get(t));
    const fault = this.down.length > 0;
    if (fault === this.written) return;
    this.written = fault;
    this.o.log(
      fault ? "warn" : "info",
      "ha",
      fault
        ? `tunnel ${this.down.join(", ")} cannot carry traffic: this instance is out of the election until it can`
        : "every tunnel can carry traffic: this instance is in the election",
    );
    this.writing = this.writing
      .then(() => writeFile(this.o.file, fault ? "1\n" : "0\n"))
      .catch((e) => this.o.log("error", "ha", `cannot write ${this.o.file}: ${(e as Error).message}`));
  }
}
