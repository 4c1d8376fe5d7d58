/**
 * Reads a namespace's network state back into the desired-state vocabulary, with up to four
 * processes in parallel: `ip -json -batch` (addresses of both families with link details,
 * rules, the routes of the tables we care about, netconf for sysctls) and `iptables-save`, and
 * for IPv6 `ip -6 -json -batch` (rules, routes, netconf) and `ip6tables-save`.
 * nftables tables (the node's enforcement) are read with one `nft list ruleset <family>`.
 *
 * Only the attributes the vocabulary compares are kept; everything else `ip` prints is dropped,
 * so a newer iproute2 adding fields changes nothing.
 */

import { readFile } from "node:fs/promises";
import type {
  Address,
  Chain,
  IptTable,
  Jump,
  Neighbour,
  NetState,
  NftChain,
  Route,
  Rule,
  Sysctl,
  VxlanLink,
} from "./desired-state.js";
import { stateOf } from "./desired-state.js";
import { formatIP, parseIP } from "./ip.js";
import { oneShot, type Readers } from "./readers.js";
import { run, type Started, start } from "./run.js";
import { startSession } from "./session.js";

/** What `ip -json link/addr show` prints of a link, as far as it is read; never leaves this module. */
interface IpLink {
  ifname: string;
  ifindex?: number;
  /** A veth's peer: its ifindex, in the namespace link_netnsid names (absent: this one). */
  link_index?: number;
  link_netnsid?: number;
  ifalias?: string;
  mtu: number;
  address?: string;
  link?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
  addr_info?: Array<{ family: string; local: string; prefixlen: number; address?: string; scope?: string }>;
}

interface IpRule {
  priority: number;
  fwmark?: string;
  fwmask?: string;
  table: string;
}

interface IpRoute {
  type?: string;
  /** Only with `table all`: a number or the kernel's names; absent for the main table. */
  table?: string;
  dst: string;
  gateway?: string;
  dev?: string;
  flags?: string[];
  /** Router preference: the kernel gives every IPv6 route one, and no IPv4 route. */
  pref?: string;
}

/**
 * Whether a route printed without a family is IPv6: `route show table all` lists every family
 * (a table filter alone would mean IPv4), and an IPv6 default must not pair up with the IPv4 one.
 */
const isRoute6 = (r: IpRoute) => r.pref !== undefined || r.dst.includes(":") || !!r.gateway?.includes(":");

interface IpNetconf {
  family: string;
  interface: string;
  forwarding?: boolean;
  rp_filter?: string;
}

/** What `ip` and `iptables-save` printed, before parsing; kept apart so parsing is unit-testable. */
export interface RawObservation {
  ip: string;
  iptables: string;
  /** `ip -6 -json -batch` (rules, the same tables' routes, netconf) and ip6tables-save; absent: no IPv6 state. */
  ip6?: string;
  ip6tables?: string;
}

/**
 * A device of the namespace as plans need it (the MTU of CNI_IFNAME, a veth's peer): a fact,
 * not an object we own, so it has no descriptor.
 */
export interface Interface {
  name: string;
  ifindex: number;
  mtu: number;
  mac: string;
  /** A veth's peer: its ifindex, and whether it is in another namespace. */
  peer?: { ifindex: number; elsewhere: boolean };
}

/** The state we compare, and the underlay facts plans need besides it. */
export interface Observed {
  state: NetState;
  interfaces: Interface[];
  /** The tools of a kept observation (see `startObserve`), waiting for an apply's batches. */
  kept?: Kept;
  /** With `neighbours`: the IPv6 neighbour entries in any state, what neighbour discovery learned. */
  ndp?: Neighbour[];
}

/**
 * Tools still running after an observation, for the apply that follows: the `ip -batch`
 * readers (`ip` and, if IPv6 was read, `ip -6`), and in a namespace the iptables-restore of
 * each family read, started with the readers and waiting for its input.
 */
export interface Kept {
  ip: Started;
  ip6?: Started;
  iptables?: Started;
  ip6tables?: Started;
}

/** Ends kept tools that will not be given anything (each exits without doing anything). */
export function endKept(kept: Kept | undefined): void {
  for (const t of [kept?.ip, kept?.ip6, kept?.iptables, kept?.ip6tables]) t?.cancel();
}

function toInterface(l: IpLink): Interface {
  return {
    name: l.ifname,
    ifindex: l.ifindex ?? 0,
    mtu: l.mtu,
    mac: l.address ?? "",
    ...(l.link_index !== undefined ? { peer: { ifindex: l.link_index, elsewhere: l.link_netnsid !== undefined } } : {}),
  };
}

export interface ObserveWhat {
  /** Routing tables to read, or all of them (one command either way). */
  tables: readonly number[] | "all";
  /**
   * Also read the neighbour entries: the permanent ones are state (the gateway's; a pod has none
   * of ours), and the IPv6 ones of any state are what neighbour discovery learned (`ndp`).
   */
  neighbours?: boolean;
}

/** Every routing table (one `ip route show table all`): what a pod's attachment is read with. */
export const EVERY_TABLE: ObserveWhat = { tables: "all" };

export async function observe(netns: string | undefined, what: ObserveWhat, readers?: Readers): Promise<Observed> {
  return startObserve(netns, what, readers ? { readers } : {}).read();
}

const routeLines = (what: ObserveWhat) =>
  what.tables === "all" ? ["route show table all"] : what.tables.map((t) => `route show table ${t}`);

/** What `ip -json -details -batch -` is asked: addresses with link details, rules, routes, netconf (and neighbours). */
function ipBatch(what: ObserveWhat): string {
  const neigh = what.neighbours ? ["neigh show"] : [];
  return ["addr show", "rule show", ...routeLines(what), "netconf show", ...neigh, ""].join("\n");
}

/** What `ip -6 -json -batch -` is asked: the IPv6 rules, routes and netconf. */
function ip6Batch(what: ObserveWhat): string {
  return ["rule show", ...routeLines(what), "netconf show", ""].join("\n");
}

/** A read already running (its process started), to be awaited once it is needed. */
export interface Pending<T> {
  read(): Promise<T>;
  cancel(): void;
}

/** An observation whose processes are already running. */
export interface PendingObservation extends Pending<Observed> {
  /** Whether it reads IPv6 state too (rules, routes, sysctls, ip6tables). */
  readonly ipv6: boolean;
}

/**
 * Starts the observing processes at once, their batches written as they start, so the caller
 * can do other work (a plugin loads its verbs and validators) while they run. `ipv6: false`
 * leaves out `ip -6` and `ip6tables-save`: a namespace with no IPv6 state of ours needs neither.
 * `keep` leaves the `ip` readers running once they have answered (`ip -batch` answers each
 * command as it reads it) and starts each family's iptables-restore with them: the changes an
 * apply then makes go to these (`Observed.kept`) instead of to new processes. Each family's
 * tools are one session (session.ts): one fork of this process (and one nsenter) for all.
 * `readers` (a daemon's, see readers.ts) asks the two `ip` batches of processes kept from one
 * reading to the next instead; then both families' `-save` are one session.
 */
export function startObserve(
  netns: string | undefined,
  what: ObserveWhat,
  options: { ipv6?: boolean; keep?: boolean; readers?: Readers } = {},
): PendingObservation {
  const ipv6 = options.ipv6 ?? true;
  const keep = options.keep ?? false;
  const readers = options.readers;
  const batch = ipBatch(what);
  const batch6 = ip6Batch(what);
  const none = Promise.resolve("");
  const quiet = <T>(p: Promise<T>) => {
    // Read only by `read`; a cancelled observation nobody reads must not fail the process.
    p.catch(() => {});
    return p;
  };
  let tools: Started[];
  let reads: [Promise<string>, Promise<string>, Promise<string>, Promise<string>];
  let kept: Kept | undefined;
  if (readers) {
    const savers = startSession(netns, [
      { argv: ["iptables-save"], output: true },
      ...(ipv6 ? [{ argv: ["ip6tables-save"], output: true }] : []),
    ]);
    tools = savers;
    const saved = savers.map((t) => quiet(t.finish("").then((r) => r.stdout)));
    reads = [
      quiet(readers.ask(["ip", "-json", "-details", "-batch", "-"], batch)),
      saved[0]!,
      ipv6 ? quiet(readers.ask(["ip", "-6", "-json", "-batch", "-"], batch6)) : none,
      saved[1] ?? none,
    ];
  } else {
    const v4 = familyReaders(netns, ["ip", "-json", "-details", "-batch", "-"], "iptables", batch, keep);
    const v6 = ipv6 ? familyReaders(netns, ["ip", "-6", "-json", "-batch", "-"], "ip6tables", batch6, keep) : undefined;
    tools = [v4, v6].flatMap((f) => (f ? Object.values(f.tools) : []));
    reads = [v4.ip, v4.saved, v6?.ip ?? none, v6?.saved ?? none];
    if (keep)
      kept = {
        ip: v4.tools.ip,
        ...(v6 ? { ip6: v6.tools.ip } : {}),
        ...(v4.tools.restore ? { iptables: v4.tools.restore } : {}),
        ...(v6?.tools.restore ? { ip6tables: v6.tools.restore } : {}),
      };
  }
  return {
    ipv6,
    async read() {
      const [ip, iptables, ip6, ip6tables] = await Promise.all(reads);
      const observed = parseObservation({ ip, iptables, ip6, ip6tables }, what);
      return kept ? { ...observed, kept } : observed;
    },
    cancel() {
      for (const tool of tools) tool.cancel();
    },
  };
}

/**
 * One family's readers, `ip -batch` given `batch` and `<family>-save`, and with `keep` its
 * `<family>-restore`, waiting. A kept `ip` keeps stdin open and answers
 * with one line (one JSON document) per command of its batch.
 */
function familyReaders(
  netns: string | undefined,
  ipArgv: string[],
  family: "iptables" | "ip6tables",
  batch: string,
  keep: boolean,
): { tools: { ip: Started; save: Started; restore?: Started }; ip: Promise<string>; saved: Promise<string> } {
  const [reader, save, restore] = startSession(netns, [
    { argv: ipArgv, input: true, output: true },
    { argv: [`${family}-save`], output: true },
    ...(keep ? [{ argv: [`${family}-restore`, "--noflush", "-w", "5"], input: true }] : []),
  ]);
  const tools = { ip: reader!, save: save!, ...(restore ? { restore } : {}) };
  const ip = keep ? tools.ip.ask(batch, batch.split("\n").length - 1) : tools.ip.finish(batch).then((r) => r.stdout);
  const saved = tools.save.finish("").then((r) => r.stdout);
  // Read only by `read`; a cancelled observation nobody reads must not fail the process.
  ip.catch(() => {});
  saved.catch(() => {});
  return { tools, ip, saved };
}

/** What a counters reading (a metrics scrape, `status`) needs from `ip`, from one process. */
export interface LinkReading {
  interfaces: Interface[];
  links: VxlanLink[];
  /** The main table's default route's device, if any. */
  defaultDev?: string;
  /** Neighbour entries per device, of every state and both families. */
  neighbours: Map<string, number>;
}

/**
 * Links, the main table's routes and every neighbour entry in one `ip -batch`: a scrape reads no
 * rules, IPv6 routes, sysctls or iptables, so it starts one process where a reconcile starts four.
 */
export async function observeLinks(netns: string | undefined, readers: Readers = oneShot(netns)): Promise<LinkReading> {
  const input = "addr show\nroute show table main\nneigh show\n";
  const stdout = await readers.ask(["ip", "-json", "-details", "-batch", "-"], input);
  const docs = stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as unknown[]);
  if (docs.length !== 3) throw new Error(`unexpected output from ip -batch: ${docs.length} documents for 3 commands`);
  const [links, routes, neigh] = docs as [IpLink[], IpRoute[], IpNeigh[]];
  const neighbours = new Map<string, number>();
  for (const n of neigh) neighbours.set(n.dev, (neighbours.get(n.dev) ?? 0) + 1);
  const defaultDev = routes.find((r) => r.dst === "default")?.dev;
  return {
    interfaces: links.map(toInterface),
    links: links.flatMap(toVxlan),
    ...(defaultDev ? { defaultDev } : {}),
    neighbours,
  };
}

/**
 * The neighbour table (one `neigh show` of every state and family, asked of `readers`): the
 * permanent entries, and the IPv6 ones in any state (what neighbour discovery learned).
 */
export async function observeNeighbours(
  netns: string | undefined,
  readers: Readers = oneShot(netns),
): Promise<{ permanent: Neighbour[]; ndp: Neighbour[] }> {
  const out = await readers.ask(["ip", "-json", "-details", "-batch", "-"], "neigh show\n");
  return splitNeighbours(out.trim() ? (JSON.parse(out) as IpNeigh[]) : []);
}

function splitNeighbours(neigh: readonly IpNeigh[]): { permanent: Neighbour[]; ndp: Neighbour[] } {
  return {
    permanent: neigh.filter((n) => n.state?.includes("PERMANENT")).flatMap(toNeighbour),
    ndp: neigh.filter((n) => n.dst.includes(":")).flatMap(toNeighbour),
  };
}

/**
 * The original source addresses of the connections the namespace tracks (one `conntrack -L`):
 * who has open flows through it. Conntrack outlives devices, so this survives a rebuild.
 */
export async function observeTrackedSources(netns: string | undefined): Promise<string[]> {
  const r = await run(["conntrack", "-L", "-f", "ipv4"], { netns });
  return parseConntrackSources(r.stdout);
}

export function parseConntrackSources(text: string): string[] {
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const m = / src=(\d+\.\d+\.\d+\.\d+) /.exec(line);
    if (m) out.add(m[1]!);
  }
  return [...out];
}

/** A tracked IPv6 connection's original source, with the mark conntrack holds for it (0: none). */
export interface TrackedSource6 {
  ip: string;
  mark: number;
}

/**
 * The original sources of the connections the namespace tracks, of both families. A reading of
 * our own namespace reads /proc/net/nf_conntrack, a file, not two `conntrack -L` processes (a
 * daemon does it on every reconcile); another namespace (--netns), or a kernel built without that
 * file, gets the processes.
 */
export async function observeTracked(
  netns: string | undefined,
): Promise<{ tracked: string[]; tracked6: TrackedSource6[] }> {
  const text = netns ? undefined : await readFile("/proc/self/net/nf_conntrack", "utf8").catch(() => undefined);
  if (text !== undefined) return parseProcConntrack(text);
  const [tracked, tracked6] = await Promise.all([observeTrackedSources(netns), observeTrackedSources6(netns)]);
  return { tracked, tracked6 };
}

/** /proc/net/nf_conntrack: conntrack's lines after a family column, IPv6 addresses written out in full. */
export function parseProcConntrack(text: string): { tracked: string[]; tracked6: TrackedSource6[] } {
  const lines = text.split("\n");
  const of = (family: string) => lines.filter((l) => l.startsWith(`${family} `)).join("\n");
  return {
    tracked: parseConntrackSources(of("ipv4")),
    tracked6: parseConntrackSources6(of("ipv6")).map((t) => ({ ...t, ip: formatIP(6, parseIP(t.ip, 6)!) })),
  };
}

/** The original sources and marks of the IPv6 connections the namespace tracks (one `conntrack -L -f ipv6`). */
export async function observeTrackedSources6(netns: string | undefined): Promise<TrackedSource6[]> {
  const r = await run(["conntrack", "-L", "-f", "ipv6"], { netns });
  return parseConntrackSources6(r.stdout);
}

/** Each distinct (original source, mark) pair once. */
export function parseConntrackSources6(text: string): TrackedSource6[] {
  const out = new Map<string, TrackedSource6>();
  for (const line of text.split("\n")) {
    const src = / src=([0-9a-f:]+) /.exec(line)?.[1];
    const mark = Number(/ mark=(\d+)/.exec(line)?.[1] ?? 0);
    if (src?.includes(":")) out.set(`${src} ${mark}`, { ip: src, mark });
  }
  return [...out.values()];
}

/** A learned (or static) FDB entry of a VXLAN device: MAC → the VTEP that sent it. */
export interface FdbEntry {
  dev: string;
  mac: string;
  /** The remote VTEP's underlay address. */
  dst: string;
}

/**
 * The FDB entries of the given devices with a remote VTEP (one `bridge -json fdb show`).
 * The all-zeros entry is a default destination, not a station, and is left out.
 */
export async function observeFdb(
  netns: string | undefined,
  devices: readonly string[],
  readers: Readers = oneShot(netns),
): Promise<FdbEntry[]> {
  if (!devices.length) return [];
  return parseFdb(await readFdb(readers), devices);
}

/** `bridge -json fdb show` of every device, as a batch: a daemon's kept `bridge` answers it. */
export function readFdb(readers: Readers): Promise<string> {
  return readers.ask(["bridge", "-json", "-batch", "-"], "fdb show\n");
}

interface BridgeFdb {
  mac: string;
  ifname?: string;
  dst?: string;
}

export function parseFdb(json: string, devices: readonly string[]): FdbEntry[] {
  const wanted = new Set(devices);
  const entries = (json.trim() ? JSON.parse(json) : []) as BridgeFdb[];
  return entries.flatMap((e) =>
    e.ifname && wanted.has(e.ifname) && e.dst && e.mac !== "00:00:00:00:00:00"
      ? [{ dev: e.ifname, mac: e.mac.toLowerCase(), dst: e.dst }]
      : [],
  );
}

/** Only one iptables table (the node side of the plugin needs nothing else). */
export async function observeIptables(netns: string | undefined, table: IptTable): Promise<NetState> {
  const r = await run(["iptables-save", "-t", table], { netns });
  return stateOf(parseIptablesSave(r.stdout));
}

export function parseObservation(raw: RawObservation, what: ObserveWhat): Observed {
  const tables = what.tables === "all" ? [undefined] : what.tables;
  const expected = tables.length + 3 + (what.neighbours ? 1 : 0);
  const docs = raw.ip
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as unknown[]);
  if (docs.length !== expected) {
    throw new Error(`unexpected output from ip -batch: ${docs.length} documents for ${expected} commands`);
  }
  const links = docs[0] as IpLink[];
  const rules = docs[1] as IpRule[];
  const routeDocs = docs.slice(2, 2 + tables.length) as IpRoute[][];
  const netconf = docs[2 + tables.length] as IpNetconf[];
  const neigh = what.neighbours ? splitNeighbours(docs[3 + tables.length] as IpNeigh[]) : undefined;
  const { chains, jumps } = parseIptablesSave(raw.iptables);
  const v6 = parseIp6(raw.ip6 ?? "", tables);
  const ipt6 = parseIptablesSave(raw.ip6tables ?? "");
  return {
    interfaces: links.map(toInterface),
    ...(neigh ? { ndp: neigh.ndp } : {}),
    state: stateOf({
      links: links.flatMap(toVxlan),
      addresses: links.flatMap(toAddresses),
      rules: rules.flatMap(toRule),
      routes: routeDocs.flatMap((rs, i) => rs.filter((r) => !isRoute6(r)).flatMap((r) => toRoute(r, tables[i]))),
      sysctls: netconf.flatMap(toSysctls),
      chains,
      jumps,
      neighbours: neigh?.permanent ?? [],
      ...v6,
      chains6: ipt6.chains,
      jumps6: ipt6.jumps,
    }),
  };
}

/** The IPv6 rules, routes and sysctls from `ip -6 -json -batch` (empty output: none). */
function parseIp6(text: string, tables: readonly (number | undefined)[]) {
  const docs = text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as unknown[]);
  if (!docs.length) return {};
  if (docs.length !== tables.length + 2)
    throw new Error(`unexpected output from ip -6 -batch: ${docs.length} documents for ${tables.length + 2} commands`);
  const routeDocs = docs.slice(1, 1 + tables.length) as IpRoute[][];
  return {
    rules6: (docs[0] as IpRule[]).flatMap(toRule),
    routes6: routeDocs.flatMap((rs, i) => rs.flatMap((r) => toRoute(r, tables[i]))),
    sysctls6: (docs[1 + tables.length] as IpNetconf[]).flatMap((n) =>
      n.family === "inet6" && n.forwarding !== undefined
        ? [{ dev: n.interface, name: "forwarding" as const, value: n.forwarding ? 1 : 0 }]
        : [],
    ),
  };
}

interface IpNeigh {
  dst: string;
  dev: string;
  lladdr?: string;
  state?: string[];
}

function toNeighbour(n: IpNeigh): Neighbour[] {
  return n.lladdr ? [{ dev: n.dev, ip: n.dst, mac: n.lladdr.toLowerCase() }] : [];
}

function toVxlan(l: IpLink): VxlanLink[] {
  if (l.linkinfo?.info_kind !== "vxlan") return [];
  const d = l.linkinfo.info_data ?? {};
  return [
    {
      name: l.ifname,
      vni: Number(d.id),
      port: Number(d.port),
      local: String(d.local ?? ""),
      ...(d.remote ? { remote: String(d.remote) } : {}),
      dev: String(d.link ?? ""),
      mtu: l.mtu,
      mac: l.address ?? "",
      learning: d.learning === true,
      ageing: Number(d.ageing ?? 300),
      ...(l.ifalias ? { alias: l.ifalias } : {}),
    },
  ];
}

function toAddresses(l: IpLink): Address[] {
  return (
    (l.addr_info ?? [])
      // IPv6 link-local addresses are the kernel's own, never ours.
      .filter((a) => a.family === "inet" || (a.family === "inet6" && a.scope === "global"))
      .map((a) => ({
        dev: l.ifname,
        local: a.local,
        prefix: a.prefixlen,
        ...(a.address && a.address !== a.local ? { peer: a.address } : {}),
      }))
  );
}

function toRule(r: IpRule): Rule[] {
  const table = Number(r.table);
  if (!r.fwmark || !Number.isInteger(table)) return [];
  return [{ priority: r.priority, fwmark: `${r.fwmark}/${r.fwmask ?? "0xffffffff"}`, table }];
}

const TABLE_NAMES: Record<string, number> = { main: 254, local: 255, default: 253 };

/** A route of the table asked for, or (table all) of the table it names; local-table routes are never ours. */
function toRoute(r: IpRoute, asked: number | undefined): Route[] {
  const table = asked ?? (r.table === undefined ? 254 : (TABLE_NAMES[r.table] ?? Number(r.table)));
  if (!Number.isInteger(table) || table === 255) return [];
  return [
    {
      table,
      type: r.type === "throw" ? "throw" : "unicast",
      dst: r.dst,
      ...(r.gateway ? { gateway: r.gateway } : {}),
      ...(r.dev ? { dev: r.dev } : {}),
      ...(r.flags?.includes("onlink") ? { onlink: true } : {}),
    },
  ];
}

const RP_FILTER: Record<string, number> = { off: 0, strict: 1, loose: 2 };

function toSysctls(n: IpNetconf): Sysctl[] {
  if (n.family !== "inet") return [];
  const out: Sysctl[] = [];
  if (n.rp_filter !== undefined) out.push({ dev: n.interface, name: "rp_filter", value: RP_FILTER[n.rp_filter] ?? -1 });
  if (n.forwarding !== undefined) out.push({ dev: n.interface, name: "forwarding", value: n.forwarding ? 1 : 0 });
  return out;
}

const BUILTIN = new Set(["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]);

/** Parses iptables-save into user chains (with their rules) and jumps from built-in hooks into them. */
export function parseIptablesSave(text: string): { chains: Chain[]; jumps: Jump[] } {
  const chains = new Map<string, Chain>();
  const jumps: Jump[] = [];
  let table: IptTable | undefined;
  const builtinLines: Array<[IptTable, string, string]> = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("*")) {
      const name = line.slice(1).trim();
      table = name === "filter" || name === "mangle" || name === "nat" ? name : undefined;
    } else if (!table) {
    } else if (line.startsWith(":")) {
      const name = line.slice(1).split(" ")[0] as string;
      if (!BUILTIN.has(name)) chains.set(`${table} ${name}`, { table, name, rules: [] });
    } else if (line.startsWith("-A ")) {
      const rest = line.slice(3);
      const space = rest.indexOf(" ");
      const chain = rest.slice(0, space);
      const spec = rest.slice(space + 1);
      if (BUILTIN.has(chain)) builtinLines.push([table, chain, spec]);
      else chains.get(`${table} ${chain}`)?.rules.push(spec);
    }
  }
  for (const [t, hook, spec] of builtinLines) {
    const m = /^(?:(.*) )?-j (\S+)$/.exec(spec);
    if (m && chains.has(`${t} ${m[2]}`)) {
      jumps.push({ table: t, hook: hook as Jump["hook"], match: m[1] ?? "", chain: m[2] as string, first: false });
    }
  }
  return { chains: [...chains.values()], jumps };
}

/** `nft -y list` of a table, or of one of its chains. */
function nftListArgv(family: NftChain["family"], table: string, chain?: string): string[] {
  // -y: priorities as numbers (nft otherwise prints the ip families' as "mangle + 1").
  return ["nft", "-y", "list", ...(chain ? ["chain", family, table, chain] : ["table", family, table])];
}

type Finished = Awaited<ReturnType<Started["finish"]>>;

/**
 * A started tool's output, parsed once it is read. A failure `failed` does not account for
 * (started with `allowFailure`) is run again, for the error a person can act on.
 */
function pendingOutput<T>(
  p: Started,
  argv: string[],
  netns: string | undefined,
  failed: (r: Finished) => T | undefined,
  parse: (stdout: string) => T,
): Pending<T> {
  const out = p.finish("");
  out.catch(() => {});
  return {
    async read() {
      const r = await out;
      if (r.exitCode === 0) return parse(r.stdout);
      return failed(r) ?? parse((await run(argv, { netns })).stdout);
    },
    cancel: p.cancel,
  };
}

/**
 * What a started `nft list` printed: none when the table or chain does not exist yet, or when nft
 * is not installed at all (then nothing can have created it; whatever must write it fails clearly).
 */
const nftListed = (p: Started, argv: string[], netns: string | undefined): Pending<NftChain[]> =>
  pendingOutput(
    p,
    argv,
    netns,
    // Not started (ENOENT) or not found by the session's shell (status 127): no nft, no table.
    (r) => (/No such file or directory|^nft: command not found/m.test(r.stderr) ? [] : undefined),
    parseNftRuleset,
  );

/** What a started `ip -json link show type veth` printed. */
const vethsListed = (p: Started, argv: string[], netns: string | undefined): Pending<Interface[]> =>
  pendingOutput(
    p,
    argv,
    netns,
    () => undefined,
    (text) => (text.trim() ? (JSON.parse(text) as IpLink[]).map(toInterface) : []),
  );

/** The chains of one nftables table of a namespace. */
export async function observeNftTable(
  netns: string | undefined,
  family: NftChain["family"],
  name: string,
): Promise<NftChain[]> {
  const argv = nftListArgv(family, name);
  return nftListed(start(argv, { netns, allowFailure: true }), argv, netns).read();
}

/** What a pod's verb reads in the node's namespace (this process's own). */
export interface NodeReads {
  nft: Pending<NftChain[]>;
  veths?: Pending<Interface[]>;
}

/**
 * A pod's verb's reads of the node, in one session (one fork of the plugin): the attachment's
 * chain of the netdev table `table` (only it, so the read stays the same size however many
 * attachments the node enforces) and, to find the pod's host side, the node's veths.
 */
export function startNodeReads(table: string, chain: string, withVeths: boolean): NodeReads {
  const nftArgv = nftListArgv("netdev", table, chain);
  const vethArgv = ["ip", "-json", "link", "show", "type", "veth"];
  const [nft, veths] = startSession(
    undefined,
    [{ argv: nftArgv, output: true }, ...(withVeths ? [{ argv: vethArgv, output: true }] : [])],
    { allowFailure: true },
  );
  return {
    nft: nftListed(nft!, nftArgv, undefined),
    ...(veths ? { veths: vethsListed(veths, vethArgv, undefined) } : {}),
  };
}

/**
 * Parses `nft -y list` output: the base chains of netdev and ip6 tables (comment, hook, device, priority,
 * policy) and their rule lines. Anything else inside a table (sets, flowtables, other people's
 * constructs) is skipped by brace depth, so it cannot be mistaken for a rule.
 */
export function parseNftRuleset(text: string): NftChain[] {
  const chains: NftChain[] = [];
  let table: { family: NftChain["family"]; name: string } | undefined;
  let chain: NftChain | undefined;
  let depth = 0;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    if (line === "}") {
      if (depth === 2) chain = undefined;
      if (depth === 1) table = undefined;
      depth--;
      continue;
    }
    if (depth === 0) {
      const m = /^table (netdev|ip6) (\S+) \{$/.exec(line);
      if (m) table = { family: m[1] as NftChain["family"], name: m[2]! };
    } else if (depth === 1) {
      const ch = /^chain (\S+) \{$/.exec(line);
      if (ch && table) {
        chain = {
          family: table.family,
          table: table.name,
          name: ch[1]!,
          hook: table.family === "netdev" ? "ingress" : "prerouting",
          device: "",
          priority: 0,
          policy: "accept",
          comment: "",
          rules: [],
        };
        chains.push(chain);
      }
    } else if (depth === 2 && chain && !line.endsWith("{")) {
      const base = /^type filter hook (\S+)(?: device "([^"]*)")? priority (-?\d+); policy (accept|drop);$/.exec(line);
      const comment = /^comment "([^"]*)"$/.exec(line);
      if (base)
        Object.assign(chain, { hook: base[1], device: base[2] ?? "", priority: Number(base[3]), policy: base[4] });
      else if (comment) chain.comment = comment[1]!;
      else chain.rules.push(line);
    }
    if (line.endsWith("{")) depth++;
  }
  return chains;
}
