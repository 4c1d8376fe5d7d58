/**
 * Command-line interface of tenant-egress-gateway: argument parsing, help texts, output for
 * people (or JSON), and exit codes: 0 done, 1 the system refused a change, 2 bad usage or
 * configuration (nothing was changed).
 */
import { parseArgs } from "node:util";
import { problems } from "../net/desired-state.js";
import { formatRate } from "../net/rates.js";
import {
  applyConfig,
  type DirectionStatus,
  deleteTenant,
  GatewayError,
  type GatewayStatus,
  type Outcome,
  reset,
  status,
} from "./commands.js";
import { type GatewayConfig, GatewayConfigError, parseGatewayConfig, readGatewayConfig } from "./config.js";
import { type DaemonOptions, GatewayDaemon, parseDuration } from "./daemon.js";
import { describeHa, readHaStatus } from "./ha/describe.js";
import { type HttpServer, parseListen, startHttp } from "./http.js";
import { LockedError } from "./lock.js";
import { makeLogger } from "./log.js";
import { describeStranger } from "./plan.js";

const HELP: Record<string, string> = {
  main: `tenant-egress-gateway: makes this network namespace the egress gateway of one or more tenants.

Usage: tenant-egress-gateway <command> [options]

Commands:
  apply -f FILE      make the namespace match FILE (idempotent; removes tenants no longer in it)
  status [--json]    per tenant and direction: limits, counters, drops, backlog, achieved rate
  delete --tenant N  remove one tenant's device, rules and classes
  reset              remove everything tenant-egress-gateway created, and nothing else
  run -f FILE        keep the namespace matching FILE: follow the file, the pods and drift

FILE is the gateway's configuration or the cluster's tenants file (the same file the node
installer reads; its plugin section is ignored here). Every command takes --netns PATH to act
on another namespace, and --help.`,
  apply: `Usage: tenant-egress-gateway apply -f FILE [--dry-run] [--netns PATH]

Reconciles the namespace with FILE (JSON, see the README): creates what is missing, changes
what differs in place (a rate change is a 'tc class change': no flow is reset), and removes
what belongs to tenants no longer in the file. --dry-run prints the differences only.`,
  status: `Usage: tenant-egress-gateway status [--json] [--interval SECONDS] [--netns PATH] [-f FILE [--ha-dir DIR]]

Samples the counters twice, SECONDS apart (default 1), and prints per tenant and direction the
configured rate and ceil, bytes, packets, drops, overlimits, backlog and the achieved rate.
With -f FILE of an HA pair, also this instance's role, the peer's last advertisement, sync
health and the number of replicated connections, as the running daemon last wrote them.`,
  delete: `Usage: tenant-egress-gateway delete --tenant NAME [--netns PATH]

Removes one tenant's tunnel, rules and classes; the other tenants are not touched. Remove it
from the configuration file too, or the next apply brings it back.`,
  run: `Usage: tenant-egress-gateway run -f FILE [--netns PATH] [--listen ADDR:PORT] [--resync 30s]
                                  [--log-format text|json] [--cleanup-on-exit] [--ha-dir DIR]

Applies FILE, then keeps the namespace matching it: re-applies within a second of a change to
FILE (its directory is watched, so a ConfigMap's symlink swap counts), repairs drift every
--resync (and logs what it repaired), adds a permanent neighbour entry for each pod as soon as
its tunnel learns it and removes it when the kernel forgets the pod. A FILE that does not parse
is refused and logged; the last good one stays in force. One line per reconcile on stdout.
Signals: SIGHUP re-reads FILE and reconciles; SIGTERM/SIGINT exit leaving the kernel as it is
(a restart with the same FILE changes nothing), unless --cleanup-on-exit. --listen serves:
  /metrics     Prometheus metrics, read from the kernel at each scrape
  /healthz     200 while the process answers
  /readyz      200 when the last reconcile succeeded and the kernel matches FILE, else 503 and why
  /api/status  JSON: per tenant and direction, rate, ceil, counters, achieved bits/s
  /            a page showing each tenant's upload and download against rate and ceil
One daemon per namespace: a second one refuses to start.
With an "ha" block in FILE the daemon is one instance of an active/standby pair (README "High
availability"): it runs keepalived and conntrackd inside this namespace, with their files in
--ha-dir (default: a directory per instance under the temporary directory), and moves the
shared and egress addresses as keepalived decides; it must run inside the namespace (no --netns).`,
  reset: `Usage: tenant-egress-gateway reset [--netns PATH]

Removes every device, chain and qdisc tree tenant-egress-gateway owns. Everything else in the
namespace stays as it is.`,
};

class UsageError extends Error {}

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

function pad(cells: string[], widths: number[]): string {
  return cells
    .map((c, i) => c.padEnd(widths[i]!))
    .join("  ")
    .trimEnd();
}

export function formatStatus(s: GatewayStatus): string {
  const rows: string[][] = [
    ["TENANT", "DIRECTION", "RATE", "CEIL", "ACHIEVED", "BYTES", "PACKETS", "DROPS", "OVERLIMITS", "BACKLOG"],
  ];
  const row = (name: string, dir: string, d: DirectionStatus | undefined) =>
    rows.push(
      d
        ? [
            name,
            dir,
            formatRate(d.rate),
            formatRate(d.ceil),
            formatRate(d.achieved),
            String(d.bytes),
            String(d.packets),
            String(d.drops),
            String(d.overlimits),
            `${d.backlogBytes}b/${d.backlogPackets}p`,
          ]
        : [name, dir, "missing"],
    );
  for (const t of s.tenants) {
    row(t.name, "upload", t.upload);
    row(t.name, "download", t.download);
  }
  if (s.unclassified) row("(no tenant)", "upload", s.unclassified);
  if (s.tunnel) row("(tunnels)", "to pods", s.tunnel);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return [
    `uplink ${s.uplink}; sampled over ${s.intervalSeconds.toFixed(1)} s; packets sent unclassified by HTB: ${s.directPackets}`,
    ...rows.map((r) => pad(r, widths)),
  ].join("\n");
}

function report(verb: string, o: Outcome, dryRun = false): string {
  const said = problems(o.changes);
  const n = said.length;
  if (n === 0) return `${verb}: nothing to change (uplink ${o.uplink})`;
  return [
    `${verb}: ${dryRun ? "would change" : "changed"} ${n} thing${n === 1 ? "" : "s"} (uplink ${o.uplink}):`,
    ...said.map((p) => `  ${p}`),
  ].join("\n");
}

/** Runs the daemon until SIGTERM or SIGINT; SIGHUP reloads. */
async function runDaemon(options: DaemonOptions, listen: string | undefined): Promise<number> {
  const daemon = new GatewayDaemon(options);
  let stopRequested: (() => void) | undefined;
  const stopped = new Promise<void>((r) => (stopRequested = r));
  const onStop = () => stopRequested?.();
  const onHup = () => daemon.reload();
  process.on("SIGTERM", onStop).on("SIGINT", onStop).on("SIGHUP", onHup);
  let http: HttpServer | undefined;
  try {
    await daemon.start();
    if (listen !== undefined) {
      http = await startHttp(daemon, listen);
      options.log(
        "info",
        "listen",
        `serving /metrics, /healthz, /readyz, /api/status and the page on http://${http.address}/`,
        { address: http.address },
      );
    }
    await stopped;
    options.log(
      "info",
      "stop",
      options.cleanupOnExit
        ? "stopping; removing what it owns (--cleanup-on-exit)"
        : "stopping; the kernel state stays as it is",
    );
    return 0;
  } finally {
    await http?.close();
    await daemon.stop();
    process.off("SIGTERM", onStop).off("SIGINT", onStop).off("SIGHUP", onHup);
  }
}

const OPTIONS = {
  file: { type: "string", short: "f" },
  "dry-run": { type: "boolean" },
  json: { type: "boolean" },
  interval: { type: "string" },
  tenant: { type: "string" },
  netns: { type: "string" },
  listen: { type: "string" },
  resync: { type: "string" },
  "log-format": { type: "string" },
  "cleanup-on-exit": { type: "boolean" },
  "ha-dir": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

type Values = ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS; strict: true }>>["values"];

type Parse = (json: unknown) => GatewayConfig;

/** Each command by name: dispatch is a lookup, so nothing unnamed ever runs (least of all reset). */
const COMMANDS: Record<
  string,
  (values: Values, netns: { netns?: string }, io: CliIo, parse: Parse) => Promise<number>
> = {
  async apply(values, netns, io, parse) {
    if (!values.file) throw new UsageError(`apply needs -f FILE\n\n${HELP.apply}`);
    const config = await readGatewayConfig(values.file, parse);
    const outcome = await applyConfig(config, { ...netns, dryRun: !!values["dry-run"] });
    io.out(`${report("apply", outcome, !!values["dry-run"])}\n`);
    for (const st of outcome.learned.strangers)
      io.err(
        `tenant-egress-gateway: warning: ${describeStranger(st, config.tenants.find((t) => t.name === st.tenant)!.overlaySubnet)}\n`,
      );
    return 0;
  },
  async status(values, netns, io, parse) {
    const interval = Number(values.interval ?? "1");
    if (!(interval > 0 && interval <= 60)) throw new UsageError("--interval takes seconds, more than 0 and at most 60");
    const s = await status({ ...netns, intervalSeconds: interval });
    const config = values.file ? await readGatewayConfig(values.file, parse) : undefined;
    const ha = config?.ha
      ? await readHaStatus(config, s.uplink, { ...netns, ...(values["ha-dir"] ? { dir: values["ha-dir"] } : {}) })
      : undefined;
    if (values.json) io.out(`${JSON.stringify(ha ? { ...s, ha } : s, null, 2)}\n`);
    else io.out(`${formatStatus(s)}${ha ? `\n${describeHa(ha)}` : ""}\n`);
    return 0;
  },
  async run(values, netns, io, parse) {
    if (!values.file) throw new UsageError(`run needs -f FILE\n\n${HELP.run}`);
    const resyncMs = parseDuration(values.resync ?? "30s");
    if (resyncMs === undefined)
      throw new UsageError(`--resync takes a duration like 30s, 500ms or 2m, not "${values.resync}"`);
    const format = values["log-format"] ?? "text";
    if (format !== "text" && format !== "json") throw new UsageError(`--log-format is text or json, not "${format}"`);
    if (values.listen !== undefined) {
      try {
        parseListen(values.listen);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    }
    return await runDaemon(
      {
        file: values.file,
        parse,
        ...netns,
        resyncMs,
        cleanupOnExit: !!values["cleanup-on-exit"],
        ...(values["ha-dir"] ? { haDir: values["ha-dir"] } : {}),
        log: makeLogger(format, io.out),
      },
      values.listen,
    );
  },
  async delete(values, netns, io) {
    if (!values.tenant) throw new UsageError(`delete needs --tenant NAME\n\n${HELP.delete}`);
    io.out(`${report("delete", await deleteTenant(values.tenant, netns))}\n`);
    return 0;
  },
  async reset(_values, netns, io) {
    io.out(`${report("reset", await reset(netns))}\n`);
    return 0;
  },
};

/**
 * `parse` turns a configuration file's JSON into the gateway's configuration; the executable
 * passes one that also reads the cluster's tenants file (src/tenants sits above both halves).
 */
export async function main(argv: string[], io: CliIo, parse: Parse = parseGatewayConfig): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (!command || command === "--help" || command === "-h" || command === "help") {
      io.out(`${HELP.main}\n`);
      return command ? 0 : 2;
    }
    const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (!run) throw new UsageError(`unknown command "${command}"\n\n${HELP.main}`);
    const { values } = parseArgs({ args: rest, options: OPTIONS, strict: true });
    if (values.help) {
      io.out(`${HELP[command]}\n`);
      return 0;
    }
    return await run(values, values.netns ? { netns: values.netns } : {}, io, parse);
  } catch (e) {
    if (
      e instanceof UsageError ||
      (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS"))
    ) {
      io.err(`tenant-egress-gateway: ${e.message}\n`);
      return 2;
    }
    if (e instanceof LockedError) {
      io.err(`tenant-egress-gateway: ${e.message}\n`);
      return 1;
    }
    if (e instanceof GatewayConfigError) {
      io.err(`tenant-egress-gateway: invalid configuration: ${e.message}\n`);
      return 2;
    }
    io.err(
      `tenant-egress-gateway: ${command} failed: ${e instanceof GatewayError ? e.message : (e as Error).message}\n`,
    );
    return 1;
  }
}
