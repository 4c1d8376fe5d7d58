/**
 * One vocabulary for the network state this project owns: links, addresses, policy rules,
 * routes, sysctls and iptables chains with the jumps into them. Both halves speak it: the pod
 * plan and the gateway plan produce a NetState, `observe` reads one back from a namespace, and
 * `diff` turns (desired, observed, scope) into the changes that make them equal.
 *
 * nftables chains are one more kind: the plugin's node-side enforcement hooks the ingress of
 * the host side of a pod's attachment (netdev family), which iptables cannot see on a bridge.
 *
 * Why a Scope: what we own is decided by name (our device, our table, our chains), not by what
 * a plan happens to contain. DEL has no prevResult to plan from, and the gateway must remove a
 * tenant that is no longer in its file; both are "desired = nothing, within our scope". ADD,
 * CHECK, DEL and the gateway's reconcile are then one mechanism: CHECK is a diff that must be
 * empty, DEL a diff against the empty state.
 */

export interface VxlanLink {
  name: string;
  vni: number;
  port: number;
  local: string;
  /** Default destination (pod side: the gateway); none on a gateway that learns its pods. */
  remote?: string;
  /** Underlay device. */
  dev: string;
  mtu: number;
  mac: string;
  learning: boolean;
  /** FDB ageing in seconds; 0 never ages learned entries out. */
  ageing: number;
  /** The interface alias: lets `status` and `delete` name a gateway's tenant from the kernel alone. */
  alias?: string;
}

export interface Address {
  dev: string;
  local: string;
  prefix: number;
  /** Point-to-point peer: the address then routes only to that peer (prefix is 32). */
  peer?: string;
}

export interface Rule {
  priority: number;
  /** "0xa/0xff" */
  fwmark: string;
  table: number;
}

export interface Route {
  table: number;
  type: "unicast" | "throw";
  /** "default", an address or a CIDR, as `ip route` prints it. */
  dst: string;
  gateway?: string;
  dev?: string;
  onlink?: boolean;
}

export type SysctlName = "rp_filter" | "forwarding";

export interface Sysctl {
  /** A device name or "all". */
  dev: string;
  name: SysctlName;
  value: number;
}

export type IptTable = "filter" | "mangle" | "nat";

export interface Chain {
  table: IptTable;
  name: string;
  /** Rule specs in iptables-save's normal form, without the leading "-A <chain>". */
  rules: string[];
}

export interface Jump {
  table: IptTable;
  hook: "PREROUTING" | "INPUT" | "FORWARD" | "OUTPUT" | "POSTROUTING";
  /** Match before "-j", in iptables-save's normal form; "" for none. */
  match: string;
  chain: string;
  /** Insert at the top of the hook (must run before other components' rules). */
  first: boolean;
}

/** A permanent neighbour entry (the gateway knows every pod's MAC: it is derived from its IP). */
export interface Neighbour {
  dev: string;
  ip: string;
  mac: string;
}

/** A qdisc we own: the HTB root of a device, or the leaf under one of its classes. */
export interface Qdisc {
  dev: string;
  /** "root", or the class it hangs under ("7e:10"). */
  parent: string;
  /** "7e:" */
  handle: string;
  kind: "htb" | "tbf" | "fq_codel" | "sfq";
  /** htb: the default class minor. */
  defaultClass?: number;
  /** tbf: rate in bytes/s, burst and limit in bytes. */
  rate?: number;
  burst?: number;
  limit?: number;
}

/** An HTB class; rates in bits/s, bursts and quantum in bytes. */
export interface TcClass {
  dev: string;
  classid: string;
  parent: string;
  rate: number;
  ceil: number;
  burst: number;
  cburst: number;
  quantum: number;
}

/**
 * A base chain we own in an nftables table: the netdev family hooks one device's ingress. Rules
 * are in `nft list`'s printed form (see canonicalNftRule), so observed and desired compare as
 * text; the comment names the owner, so GC can judge a chain from the kernel alone.
 */
export interface NftChain {
  name: string;
  hook: "ingress";
  device: string;
  priority: number;
  policy: "accept" | "drop";
  comment: string;
  rules: string[];
}

/**
 * An nftables table holding chains; shared (many owners' chains side by side, one per
 * attachment), so ownership is per chain and the table itself is never removed. One table, not
 * one per attachment: nft fetches every table's contents before each command, so per-attachment
 * tables made each ADD cost O(pods) (measured: 0.5-0.9 s at 100 pods vs 35 ms in one table).
 */
export interface NftTable {
  family: "netdev";
  name: string;
  chains: NftChain[];
}

export interface NetState {
  links: VxlanLink[];
  addresses: Address[];
  rules: Rule[];
  routes: Route[];
  sysctls: Sysctl[];
  chains: Chain[];
  jumps: Jump[];
  neighbours: Neighbour[];
  qdiscs: Qdisc[];
  classes: TcClass[];
  nftTables: NftTable[];
}

/** What belongs to us in a namespace, by name: everything else is never touched. */
export interface Scope {
  link(name: string): boolean;
  rule(rule: Rule): boolean;
  routeTable(table: number): boolean;
  chain(table: IptTable, name: string): boolean;
  /** Devices whose root qdisc is ours. */
  tcRoot(dev: string): boolean;
  /** HTB classes that are ours (under a root of ours). */
  tcClass(dev: string, classid: string): boolean;
  /** nftables chains that are ours (by table and name). */
  nftChain(table: string, chain: string): boolean;
}

export const EMPTY_STATE: NetState = Object.freeze({
  links: [],
  addresses: [],
  rules: [],
  routes: [],
  sysctls: [],
  chains: [],
  jumps: [],
  neighbours: [],
  qdiscs: [],
  classes: [],
  nftTables: [],
}) as NetState;

export interface NftPlacedChain {
  family: NftTable["family"];
  table: string;
  chain: NftChain;
}

/** Everything that must change; each entry also says, in words, what is wrong (for CHECK). */
export interface Changes {
  /** Links to (re)create; a link that differs in a way `ip link set` cannot fix is deleted first. */
  addLinks: VxlanLink[];
  setLinks: VxlanLink[];
  delLinks: string[];
  addAddresses: Address[];
  delAddresses: Address[];
  addRules: Rule[];
  delRules: Rule[];
  addRoutes: Route[];
  delRoutes: Route[];
  sysctls: Sysctl[];
  /** Chains to (re)write whole: declaring a chain in iptables-restore flushes it. */
  writeChains: Chain[];
  delChains: Chain[];
  addJumps: Jump[];
  delJumps: Jump[];
  addNeighbours: Neighbour[];
  delNeighbours: Neighbour[];
  /** Qdiscs to add or replace (a root that is not ours yet, a leaf of another kind or size). */
  putQdiscs: Qdisc[];
  /** Our HTB roots whose options changed: `tc qdisc change`, keeping every class. */
  changeQdiscs: Qdisc[];
  /** Roots to delete (reset): everything under them goes too. */
  delQdiscs: Qdisc[];
  addClasses: TcClass[];
  /** Classes changed in place (`tc class change`): no reset of counters or queues. */
  changeClasses: TcClass[];
  delClasses: TcClass[];
  /** nftables chains to (re)write whole or remove, atomically, in one `nft -f` transaction. */
  writeNftChains: NftPlacedChain[];
  delNftChains: NftPlacedChain[];
  problems: string[];
}

const linkKey = (l: { name: string }) => l.name;
const addressKey = (a: Address) => `${a.dev} ${a.local}`;
const ruleKey = (r: Rule) => `${r.table} ${r.fwmark}`;
const routeKey = (r: Route) => `${r.table} ${r.dst}`;
const sysctlKey = (s: Sysctl) => `${s.dev} ${s.name}`;
const chainKey = (c: { table: string; name: string }) => `${c.table} ${c.name}`;
export const jumpSpec = (j: Pick<Jump, "match" | "chain">) => `${j.match ? `${j.match} ` : ""}-j ${j.chain}`;
const jumpKey = (j: Jump) => `${j.table} ${j.hook} ${jumpSpec(j)}`;
const neighbourKey = (n: Neighbour) => `${n.dev} ${n.ip}`;
const qdiscKey = (q: Qdisc) => `${q.dev} ${q.parent}`;
const classKey = (c: TcClass) => `${c.dev} ${c.classid}`;

function byKey<T>(items: readonly T[], key: (t: T) => string): Map<string, T> {
  return new Map(items.map((t) => [key(t), t]));
}

/** Attributes of a vxlan link that only a delete + add can change. */
function vxlanIdentity(l: VxlanLink): string {
  return JSON.stringify([l.vni, l.port, l.local, l.remote ?? "", l.dev, l.learning, l.ageing]);
}

function describeRoute(r: Route): string {
  return `route ${r.type === "throw" ? "throw " : ""}${r.dst}${r.gateway ? ` via ${r.gateway}` : ""}${r.dev ? ` dev ${r.dev}` : ""} table ${r.table}`;
}

function sameRoute(a: Route, b: Route): boolean {
  return (
    a.type === b.type &&
    (a.gateway ?? "") === (b.gateway ?? "") &&
    (a.dev ?? "") === (b.dev ?? "") &&
    !!a.onlink === !!b.onlink
  );
}

/**
 * The changes that turn `observed` into `desired` within `scope`. Objects outside the scope
 * are never deleted; objects inside it that the desired state lacks are.
 */
export function diff(desired: NetState, observed: NetState, scope: Scope): Changes {
  const c: Changes = {
    addLinks: [],
    setLinks: [],
    delLinks: [],
    addAddresses: [],
    delAddresses: [],
    addRules: [],
    delRules: [],
    addRoutes: [],
    delRoutes: [],
    sysctls: [],
    writeChains: [],
    delChains: [],
    addJumps: [],
    delJumps: [],
    addNeighbours: [],
    delNeighbours: [],
    putQdiscs: [],
    changeQdiscs: [],
    delQdiscs: [],
    addClasses: [],
    changeClasses: [],
    delClasses: [],
    writeNftChains: [],
    delNftChains: [],
    problems: [],
  };

  // Links. A recreated link loses its addresses, routes and sysctls: remember which.
  const seenLinks = byKey(observed.links, linkKey);
  const recreated = new Set<string>();
  for (const want of desired.links) {
    const have = seenLinks.get(want.name);
    if (!have) {
      c.addLinks.push(want);
      recreated.add(want.name);
      c.problems.push(`link ${want.name} is missing`);
    } else if (vxlanIdentity(have) !== vxlanIdentity(want)) {
      c.delLinks.push(want.name);
      c.addLinks.push(want);
      recreated.add(want.name);
      c.problems.push(
        `link ${want.name} has different vxlan settings (have ${vxlanIdentity(have)}, want ${vxlanIdentity(want)})`,
      );
    } else if (have.mtu !== want.mtu || have.mac !== want.mac || (have.alias ?? "") !== (want.alias ?? "")) {
      c.setLinks.push(want);
      c.problems.push(`link ${want.name} has mtu ${have.mtu} mac ${have.mac}, want mtu ${want.mtu} mac ${want.mac}`);
    }
  }
  const wantedLinks = new Set(desired.links.map(linkKey));
  for (const have of observed.links) {
    if (scope.link(have.name) && !wantedLinks.has(have.name)) {
      c.delLinks.push(have.name);
      c.problems.push(`link ${have.name} is left over`);
    }
  }
  const gone = (dev: string | undefined) => dev !== undefined && (recreated.has(dev) || c.delLinks.includes(dev));

  // Addresses on our links.
  const seenAddrs = byKey(
    observed.addresses.filter((a) => !gone(a.dev)),
    addressKey,
  );
  for (const want of desired.addresses) {
    const have = seenAddrs.get(addressKey(want));
    if (!have || have.prefix !== want.prefix || (have.peer ?? "") !== (want.peer ?? "")) {
      if (have) c.delAddresses.push(have);
      c.addAddresses.push(want);
      if (!recreated.has(want.dev))
        c.problems.push(`address ${want.local} on ${want.dev} is ${have ? "different" : "missing"}`);
    }
  }
  const wantedAddrs = new Set(desired.addresses.map(addressKey));
  for (const have of seenAddrs.values()) {
    if (scope.link(have.dev) && !wantedAddrs.has(addressKey(have))) {
      c.delAddresses.push(have);
      c.problems.push(`address ${have.local} on ${have.dev} is left over`);
    }
  }

  // Policy rules.
  const seenRules = byKey(observed.rules, ruleKey);
  for (const want of desired.rules) {
    const have = seenRules.get(ruleKey(want));
    if (!have || have.priority !== want.priority) {
      if (have) c.delRules.push(have);
      c.addRules.push(want);
      c.problems.push(
        `ip rule fwmark ${want.fwmark} lookup ${want.table} is ${have ? `at priority ${have.priority}, want ${want.priority}` : "missing"}`,
      );
    }
  }
  const wantedRules = new Set(desired.rules.map(ruleKey));
  for (const have of observed.rules) {
    if (scope.rule(have) && !wantedRules.has(ruleKey(have))) {
      c.delRules.push(have);
      c.problems.push(`ip rule fwmark ${have.fwmark} lookup ${have.table} is left over`);
    }
  }

  // Routes in our tables. Routes through a link being deleted go with it.
  const seenRoutes = byKey(
    observed.routes.filter((r) => !gone(r.dev)),
    routeKey,
  );
  for (const want of desired.routes) {
    const have = seenRoutes.get(routeKey(want));
    if (!have || !sameRoute(have, want)) {
      c.addRoutes.push(want);
      if (!recreated.has(want.dev ?? ""))
        c.problems.push(`${describeRoute(want)} is ${have ? `different (have ${describeRoute(have)})` : "missing"}`);
    }
  }
  const wantedRoutes = new Set(desired.routes.map(routeKey));
  for (const have of seenRoutes.values()) {
    if (scope.routeTable(have.table) && !wantedRoutes.has(routeKey(have))) {
      c.delRoutes.push(have);
      c.problems.push(`${describeRoute(have)} is left over`);
    }
  }

  // Sysctls: set when different; never reverted (they belong to the namespace's owner too).
  const seenSysctls = byKey(observed.sysctls, sysctlKey);
  for (const want of desired.sysctls) {
    const have = seenSysctls.get(sysctlKey(want));
    if (gone(want.dev) || have?.value !== want.value) {
      c.sysctls.push(want);
      if (!gone(want.dev))
        c.problems.push(`sysctl ${want.name} on ${want.dev} is ${have?.value ?? "unset"}, want ${want.value}`);
    }
  }

  // iptables chains: rewritten whole when any rule differs.
  const seenChains = byKey(observed.chains, chainKey);
  for (const want of desired.chains) {
    const have = seenChains.get(chainKey(want));
    if (!have || have.rules.join("\n") !== want.rules.join("\n")) {
      c.writeChains.push(want);
      c.problems.push(`iptables chain ${want.name} (${want.table}) is ${have ? "different" : "missing"}`);
    }
  }
  const wantedChains = new Set(desired.chains.map(chainKey));
  for (const have of observed.chains) {
    if (scope.chain(have.table, have.name) && !wantedChains.has(chainKey(have))) {
      c.delChains.push(have);
      c.problems.push(`iptables chain ${have.name} (${have.table}) is left over`);
    }
  }
  const seenJumps = byKey(observed.jumps, jumpKey);
  for (const want of desired.jumps) {
    if (!seenJumps.has(jumpKey(want))) {
      c.addJumps.push(want);
      c.problems.push(`iptables jump ${want.hook} ${jumpSpec(want)} (${want.table}) is missing`);
    }
  }
  const wantedJumps = new Set(desired.jumps.map(jumpKey));
  for (const have of observed.jumps) {
    if (scope.chain(have.table, have.chain) && !wantedJumps.has(jumpKey(have))) {
      c.delJumps.push(have);
      c.problems.push(`iptables jump ${have.hook} ${jumpSpec(have)} (${have.table}) is left over`);
    }
  }
  diffNeighbours(desired, observed, scope, gone, c);
  diffTc(desired, observed, scope, recreated, c);
  diffNft(desired, observed, scope, c);
  return c;
}

/** Names the entries when they are few, counts them when they are many (a gateway can hold thousands). */
function describeNeighbours(entries: readonly Neighbour[], what: string): string {
  const shown = entries
    .slice(0, 5)
    .map((n) => `${n.ip} on ${n.dev}`)
    .join(", ");
  const more = entries.length > 5 ? ` and ${entries.length - 5} more` : "";
  return `${entries.length} permanent neighbour entr${entries.length === 1 ? "y" : "ies"} ${what}: ${shown}${more}`;
}

/**
 * nft prints anonymous sets sorted and a one-element set without braces; this canonical form
 * makes a rule written either way compare equal to what nft prints back.
 */
export function canonicalNftRule(rule: string): string {
  return rule.trim().replace(/\{([^{}]*)\}/g, (_m, inner: string) => {
    const items = inner
      .split(",")
      .map((x) => x.trim())
      .filter((x) => x !== "")
      .sort();
    return items.length === 1 ? items[0]! : `{ ${items.join(", ")} }`;
  });
}

/** What a chain holds, in one comparable string, and in words where it differs. */
function nftIdentity(ch: NftChain): string {
  return JSON.stringify([ch.hook, ch.device, ch.priority, ch.policy, ch.comment, ch.rules.map(canonicalNftRule)]);
}

function nftDifference(h: NftChain, w: NftChain): string {
  const out: string[] = [];
  if (h.device !== w.device || h.hook !== w.hook)
    out.push(`hooks ${h.hook} of ${h.device || "no device"}, want ${w.hook} of ${w.device}`);
  if (h.priority !== w.priority || h.policy !== w.policy)
    out.push(`has priority ${h.priority} policy ${h.policy}, want ${w.priority} ${w.policy}`);
  if (h.comment !== w.comment) out.push(`is owned by "${h.comment}", want "${w.comment}"`);
  const hr = h.rules.map(canonicalNftRule);
  const wrong = w.rules.map(canonicalNftRule).filter((r, i) => hr[i] !== r);
  if (wrong.length || hr.length !== w.rules.length)
    out.push(
      `has different rules (${wrong.length ? `first wrong or missing: "${wrong[0]}"` : `${hr.length} rules, want ${w.rules.length}`})`,
    );
  return out.join(", ") || "is different";
}

const placed = (state: NetState): NftPlacedChain[] =>
  state.nftTables.flatMap((t) => t.chains.map((chain) => ({ family: t.family, table: t.name, chain })));
const placedKey = (p: NftPlacedChain) => `${p.family} ${p.table} ${p.chain.name}`;

function diffNft(desired: NetState, observed: NetState, scope: Scope, c: Changes): void {
  const seen = byKey(placed(observed), placedKey);
  for (const want of placed(desired)) {
    const have = seen.get(placedKey(want));
    if (!have || nftIdentity(have.chain) !== nftIdentity(want.chain)) {
      c.writeNftChains.push(want);
      c.problems.push(
        `nftables chain ${want.chain.name} (${want.family} ${want.table}) ${have ? nftDifference(have.chain, want.chain) : "is missing"}`,
      );
    }
  }
  const wanted = new Set(placed(desired).map(placedKey));
  for (const have of seen.values()) {
    if (scope.nftChain(have.table, have.chain.name) && !wanted.has(placedKey(have))) {
      c.delNftChains.push(have);
      c.problems.push(`nftables chain ${have.chain.name} (${have.family} ${have.table}) is left over`);
    }
  }
}

function diffNeighbours(
  desired: NetState,
  observed: NetState,
  scope: Scope,
  gone: (dev: string) => boolean,
  c: Changes,
): void {
  const seen = byKey(
    observed.neighbours.filter((n) => !gone(n.dev)),
    neighbourKey,
  );
  const missing: Neighbour[] = [];
  for (const want of desired.neighbours) {
    if (seen.get(neighbourKey(want))?.mac !== want.mac) {
      c.addNeighbours.push(want);
      if (!gone(want.dev)) missing.push(want);
    }
  }
  if (missing.length) c.problems.push(describeNeighbours(missing, "missing or wrong"));
  const wanted = new Set(desired.neighbours.map(neighbourKey));
  const extra = [...seen.values()].filter((n) => scope.link(n.dev) && !wanted.has(neighbourKey(n)));
  c.delNeighbours.push(...extra);
  if (extra.length) c.problems.push(describeNeighbours(extra, "left over"));
}

/** Rates as the kernel stores them round to its tables; a relative error this small is equal. */
function closeTo(a: number, b: number): boolean {
  return Math.abs(a - b) <= Math.max(8, 0.005 * Math.max(a, b));
}

function sameQdisc(a: Qdisc, b: Qdisc): boolean {
  if (a.kind !== b.kind || a.handle !== b.handle) return false;
  if (a.kind === "htb") return a.defaultClass === b.defaultClass;
  // tbf: the kernel shows no limit and rounds the burst; its rate is derived from the same
  // class rate as the limit, so a changed rate is how a resized leaf shows.
  if (a.kind === "tbf") return closeTo(a.rate ?? 0, b.rate ?? 0);
  return true;
}

/** What differs between an observed and a desired class, in words; "" when they are the same. */
function classDifference(have: TcClass, want: TcClass): string {
  const out: string[] = [];
  if (have.parent !== want.parent) out.push(`parent ${have.parent} (want ${want.parent})`);
  for (const k of ["rate", "ceil", "burst", "cburst"] as const)
    if (!closeTo(have[k], want[k])) out.push(`${k} ${have[k]} (want ${want[k]})`);
  // The kernel prints no quantum for inner classes: it only applies to leaves.
  if (have.quantum !== 0 && have.quantum !== want.quantum) out.push(`quantum ${have.quantum} (want ${want.quantum})`);
  return out.join(", ");
}

function diffTc(desired: NetState, observed: NetState, scope: Scope, recreated: Set<string>, c: Changes): void {
  const fresh = (dev: string) => recreated.has(dev);
  const seenQ = byKey(
    observed.qdiscs.filter((q) => !fresh(q.dev)),
    qdiscKey,
  );
  const rootsReplaced = new Set<string>();
  for (const want of desired.qdiscs) {
    const have = seenQ.get(qdiscKey(want));
    if (have && sameQdisc(have, want)) continue;
    const sameRoot = want.parent === "root" && have?.kind === want.kind && have.handle === want.handle;
    (sameRoot ? c.changeQdiscs : c.putQdiscs).push(want);
    if (want.parent === "root" && !sameRoot) rootsReplaced.add(want.dev);
    if (!fresh(want.dev))
      c.problems.push(
        `qdisc ${want.kind} ${want.handle} on ${want.dev} (parent ${want.parent}) is ${have ? `${have.kind} ${have.handle}, different` : "missing"}`,
      );
  }
  const wantedRoots = new Set(desired.qdiscs.filter((q) => q.parent === "root").map((q) => q.dev));
  for (const have of seenQ.values()) {
    if (
      have.parent === "root" &&
      scope.tcRoot(have.dev) &&
      !wantedRoots.has(have.dev) &&
      !c.delLinks.includes(have.dev)
    ) {
      c.delQdiscs.push(have);
      c.problems.push(`qdisc ${have.kind} ${have.handle} on ${have.dev} is left over`);
    }
  }
  // A replaced root starts empty: every class under it is new.
  const seenC = byKey(
    observed.classes.filter((x) => !fresh(x.dev) && !rootsReplaced.has(x.dev)),
    classKey,
  );
  for (const want of desired.classes) {
    const have = seenC.get(classKey(want));
    if (!have) {
      c.addClasses.push(want);
      if (!fresh(want.dev) && !rootsReplaced.has(want.dev))
        c.problems.push(`class ${want.classid} on ${want.dev} is missing`);
    } else {
      const difference = classDifference(have, want);
      if (difference) {
        c.changeClasses.push(want);
        c.problems.push(`class ${want.classid} on ${want.dev} has ${difference}`);
      }
    }
  }
  const wanted = new Set(desired.classes.map(classKey));
  const rootGoes = new Set([...c.delQdiscs.map((q) => q.dev), ...c.delLinks]);
  for (const have of seenC.values()) {
    if (scope.tcClass(have.dev, have.classid) && !wanted.has(classKey(have)) && !rootGoes.has(have.dev)) {
      c.delClasses.push(have);
      c.problems.push(`class ${have.classid} on ${have.dev} is left over`);
    }
  }
}

/**
 * The part of `state` inside `scope`. A failed ADD is rolled back by reconciling towards what
 * was observed before it, restricted to our scope: what the ADD created goes, what it replaced
 * comes back, and nothing else is touched.
 */
export function within(state: NetState, scope: Scope): NetState {
  return {
    links: state.links.filter((l) => scope.link(l.name)),
    addresses: state.addresses.filter((a) => scope.link(a.dev)),
    rules: state.rules.filter((r) => scope.rule(r)),
    routes: state.routes.filter((r) => scope.routeTable(r.table)),
    sysctls: [],
    chains: state.chains.filter((c) => scope.chain(c.table, c.name)),
    jumps: state.jumps.filter((j) => scope.chain(j.table, j.chain)),
    neighbours: state.neighbours.filter((n) => scope.link(n.dev)),
    qdiscs: state.qdiscs.filter((q) => scope.tcRoot(q.dev)),
    classes: state.classes.filter((c) => scope.tcClass(c.dev, c.classid)),
    nftTables: state.nftTables
      .map((t) => ({ ...t, chains: t.chains.filter((ch) => scope.nftChain(t.name, ch.name)) }))
      .filter((t) => t.chains.length),
  };
}
