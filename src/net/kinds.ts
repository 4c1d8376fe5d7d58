/**
 * One descriptor per kind of object the project owns: everything the engine (desired-state.ts)
 * and the batch runner (apply.ts) need to know about a kind, in one place. A descriptor says
 * - `key`: what identifies an object (the kernel's own key, with the address family), so
 *   observed and desired objects pair up;
 * - `compare`: whether an observed object equals a desired one (with tolerance where the kernel
 *   rounds), and if not, whether it is fixed in place or replaced, and what differs in words;
 * - `describe`: the object in words, for CHECK and apply's report;
 * - `owned`: whether a scope owns an observed object (only owned objects are ever deleted);
 * - `livesIn`/`resets`: containment — an address lives in its device, a class under its
 *   device's root qdisc; recreating a device resets what lived in it;
 * - `render`: the batch lines of its changes, for one tool, with a stage that orders them
 *   inside that tool's batch (deletions before additions, parents before children).
 * The order of DESCRIPTORS is the order kinds are compared in: containers before contents.
 */
import type { AnyChange, Change, Kind, ObjectOf, Scope } from "./desired-state.js";
import { canonicalRule, rulesDifference } from "./iptables-rule.js";
import type { Chain, Jump, Neighbour, NftChain, Qdisc, Route, Rule, Sysctl, TcClass, VxlanLink } from "./objects.js";

/** The process a line goes to; `group` splits a tool's batch (iptables: one block per table). */
export type Tool = "ip" | "ip6" | "iptables" | "ip6tables" | "nft" | "sysctl" | "tc";

export interface Line {
  tool: Tool;
  group: string;
  stage: number;
  text: string;
}

export interface Descriptor<K extends Kind> {
  kind: K;
  key(o: ObjectOf<K>): string;
  compare(have: ObjectOf<K>, want: ObjectOf<K>): { op: "change" | "replace"; why: string } | undefined;
  describe(o: ObjectOf<K>): string;
  owned(scope: Scope, o: ObjectOf<K>): boolean;
  livesIn?(o: ObjectOf<K>): string[];
  resets?(c: Change<K>): string[];
  render(changes: Change<K>[]): Line[];
  /**
   * What the kernel gives a wanted object that is not there, from what is (looked up by key):
   * when that already compares equal, nothing is written.
   */
  inherited?(want: ObjectOf<K>, lookup: (key: string) => ObjectOf<K> | undefined): ObjectOf<K> | undefined;
  /** Many changes as few messages (a gateway can hold thousands of neighbour entries). */
  summarize?(changes: Change<K>[]): string[];
}

const family = (address: string) => (address.includes(":") ? "inet6" : "inet");
const dev = (name: string) => `dev:${name}`;
const tcRoot = (name: string) => `tc:${name}`;
const removed = (c: Change) => c.op === "delete" || c.op === "replace";
const put = (c: Change) => c.op !== "delete";
/** The object a removal removes: the observed one. */
const old = <K extends Kind>(c: Change<K>) => (c.op === "replace" ? c.have! : c.object);
const line = (tool: Tool, stage: number, text: string, group = ""): Line => ({ tool, group, stage, text });

/** Attributes of a vxlan link that only a delete + add can change. */
function vxlanIdentity(l: VxlanLink): string {
  return JSON.stringify([l.vni, l.port, l.local, l.remote ?? "", l.dev, l.learning, l.ageing]);
}

const linkSet = (l: VxlanLink) =>
  `link set dev ${l.name} address ${l.mac} mtu ${l.mtu}${l.alias ? ` alias ${l.alias}` : ""} up`;

const links: Descriptor<"links"> = {
  kind: "links",
  key: (l) => l.name,
  compare(have, want) {
    if (vxlanIdentity(have) !== vxlanIdentity(want))
      return {
        op: "replace",
        why: `has different vxlan settings (have ${vxlanIdentity(have)}, want ${vxlanIdentity(want)})`,
      };
    if (have.mtu !== want.mtu || have.mac !== want.mac || (have.alias ?? "") !== (want.alias ?? ""))
      return {
        op: "change",
        why: `has mtu ${have.mtu} mac ${have.mac} alias "${have.alias ?? ""}", want mtu ${want.mtu} mac ${want.mac} alias "${want.alias ?? ""}"`,
      };
    return undefined;
  },
  describe: (l) => `link ${l.name}`,
  owned: (s, l) => !!s.link?.(l.name),
  resets: (c) => (c.op === "change" ? [] : [dev(c.object.name)]),
  render: (changes) =>
    changes.flatMap((c) => [
      ...(removed(c) ? [line("ip", 3, `link del dev ${c.object.name}`)] : []),
      ...(c.op === "add" || c.op === "replace"
        ? [
            line(
              "ip",
              4,
              `link add ${c.object.name} type vxlan id ${c.object.vni} dstport ${c.object.port} local ${c.object.local}${
                c.object.remote ? ` remote ${c.object.remote}` : ""
              } dev ${c.object.dev} ${c.object.learning ? "learning" : "nolearning"} ageing ${c.object.ageing}`,
            ),
            line("ip", 4, linkSet(c.object)),
          ]
        : []),
      ...(c.op === "change" ? [line("ip", 5, linkSet(c.object))] : []),
    ]),
};

// IPv6 addresses skip DAD: ours are on point-to-point tunnels, and DAD would keep them unusable for a second.
const addrSpec = (a: ObjectOf<"addresses">) =>
  `${a.local}${a.peer ? ` peer ${a.peer}` : `/${a.prefix}`} dev ${a.dev}${family(a.local) === "inet6" ? " nodad" : ""}`;

const addresses: Descriptor<"addresses"> = {
  kind: "addresses",
  key: (a) => `${family(a.local)} ${a.dev} ${a.local}`,
  compare: (have, want) =>
    have.prefix !== want.prefix || (have.peer ?? "") !== (want.peer ?? "")
      ? { op: "replace", why: "is different" }
      : undefined,
  describe: (a) => `address ${a.local} on ${a.dev}`,
  owned: (s, a) => !!s.link?.(a.dev),
  livesIn: (a) => [dev(a.dev)],
  render: (changes) =>
    changes.flatMap((c) => [
      ...(removed(c) ? [line("ip", 2, `addr del ${addrSpec(old(c))}`)] : []),
      ...(put(c) ? [line("ip", 6, `addr replace ${addrSpec(c.object)}`)] : []),
    ]),
};

const ruleSpec = (r: ObjectOf<"rules">) => `pref ${r.priority} fwmark ${r.fwmark} lookup ${r.table}`;

const rules: Descriptor<"rules"> = {
  kind: "rules",
  key: (r) => `inet ${r.table} ${r.fwmark}`,
  compare: (have, want) =>
    have.priority !== want.priority
      ? { op: "replace", why: `is at priority ${have.priority}, want ${want.priority}` }
      : undefined,
  describe: (r) => `ip rule fwmark ${r.fwmark} lookup ${r.table}`,
  owned: (s, r) => !!s.rule?.(r),
  render: (changes) =>
    changes.flatMap((c) => [
      ...(removed(c) ? [line("ip", 1, `rule del ${ruleSpec(old(c))}`)] : []),
      ...(put(c) ? [line("ip", 7, `rule add ${ruleSpec(c.object)}`)] : []),
    ]),
};

function describeRoute(r: Route): string {
  return `route ${r.type === "throw" ? "throw " : ""}${r.dst}${r.gateway ? ` via ${r.gateway}` : ""}${r.dev ? ` dev ${r.dev}` : ""} table ${r.table}`;
}

function routeSpec(r: Route): string {
  const head = r.type === "throw" ? `throw ${r.dst}` : r.dst;
  return `${head}${r.gateway ? ` via ${r.gateway}` : ""}${r.dev ? ` dev ${r.dev}` : ""}${r.onlink ? " onlink" : ""} table ${r.table}`;
}

const routes: Descriptor<"routes"> = {
  kind: "routes",
  key: (r) => `${r.dst === "default" ? "inet" : family(r.dst)} ${r.table} ${r.dst}`,
  compare: (a, b) =>
    a.type === b.type &&
    (a.gateway ?? "") === (b.gateway ?? "") &&
    (a.dev ?? "") === (b.dev ?? "") &&
    !!a.onlink === !!b.onlink
      ? undefined
      : { op: "change", why: `is different (have ${describeRoute(a)})` },
  describe: describeRoute,
  owned: (s, r) => !!s.routeTable?.(r.table),
  livesIn: (r) => (r.dev ? [dev(r.dev)] : []),
  render: (changes) =>
    changes.map((c) =>
      c.op === "delete"
        ? line("ip", 0, `route del ${routeSpec(c.object)}`)
        : line("ip", 8, `route replace ${routeSpec(c.object)}`),
    ),
};

/** Names the entries when they are few, counts them when they are many. */
function describeNeighbours(entries: readonly Neighbour[], what: string): string {
  const shown = entries
    .slice(0, 5)
    .map((n) => `${n.ip} on ${n.dev}`)
    .join(", ");
  const more = entries.length > 5 ? ` and ${entries.length - 5} more` : "";
  return `${entries.length} permanent neighbour entr${entries.length === 1 ? "y" : "ies"} ${what}: ${shown}${more}`;
}

const neighbours: Descriptor<"neighbours"> = {
  kind: "neighbours",
  key: (n) => `${family(n.ip)} ${n.dev} ${n.ip}`,
  compare: (have, want) => (have.mac !== want.mac ? { op: "change", why: `has MAC ${have.mac}` } : undefined),
  describe: (n) => `permanent neighbour ${n.ip} on ${n.dev}`,
  owned: (s, n) => !!s.link?.(n.dev),
  livesIn: (n) => [dev(n.dev)],
  render: (changes) =>
    changes.map((c) =>
      c.op === "delete"
        ? line("ip", 9, `neigh del ${c.object.ip} dev ${c.object.dev}`)
        : line("ip", 10, `neigh replace ${c.object.ip} lladdr ${c.object.mac} dev ${c.object.dev} nud permanent`),
    ),
  summarize(changes) {
    const wrong = changes.filter(put).map((c) => c.object);
    const extra = changes.filter((c) => c.op === "delete").map((c) => c.object);
    return [
      ...(wrong.length ? [describeNeighbours(wrong, "missing or wrong")] : []),
      ...(extra.length ? [describeNeighbours(extra, "left over")] : []),
    ];
  },
};

/**
 * Set when different, never reverted: sysctls belong to the namespace's owner too, so no scope
 * owns one. A device the kernel creates starts with conf/default's values, so a sysctl of a
 * device that does not exist yet is only written when that value will not do.
 */
const sysctls: Descriptor<"sysctls"> = {
  kind: "sysctls",
  key: (s) => `inet ${s.dev} ${s.name}`,
  compare: (have, want) =>
    have.value === want.value || want.accept?.includes(have.value)
      ? undefined
      : { op: "change", why: `is ${have.value}, want ${[want.value, ...(want.accept ?? [])].join(" or ")}` },
  inherited: (want, lookup) => {
    const template = want.dev === "all" || want.dev === "default" ? undefined : lookup(`inet default ${want.name}`);
    return template && { dev: want.dev, name: want.name, value: template.value };
  },
  describe: (s) => `sysctl ${s.name} on ${s.dev}`,
  owned: () => false,
  livesIn: (s) => [dev(s.dev)],
  // The slash form: a device name may contain dots (eth0.100), which the dotted form splits.
  render: (changes) =>
    changes.map((c) => line("sysctl", 0, `net/ipv4/conf/${c.object.dev}/${c.object.name}=${c.object.value}`)),
};

export const jumpSpec = (j: { match: string; chain: string }) => `${j.match ? `${j.match} ` : ""}-j ${j.chain}`;

const chains: Descriptor<"chains"> = {
  kind: "chains",
  key: (c) => `ipv4 ${c.table} ${c.name}`,
  // By meaning: another iptables version or backend prints the same rules in another form.
  compare: (have, want) => {
    const why = rulesDifference(have.rules, want.rules);
    return why ? { op: "replace", why } : undefined;
  },
  describe: (c) => `iptables chain ${c.name} (${c.table})`,
  owned: (s, c) => !!s.chain?.(c.table, c.name),
  // Declaring a chain in iptables-restore creates it, or flushes it if it exists: either way it is then empty.
  render: (changes) =>
    changes.flatMap((c) => [
      line("iptables", 0, `:${c.object.name} - [0:0]`, c.object.table),
      ...(put(c) ? c.object.rules.map((r) => line("iptables", 1, `-A ${c.object.name} ${r}`, c.object.table)) : []),
      ...(c.op === "delete" ? [line("iptables", 4, `-X ${c.object.name}`, c.object.table)] : []),
    ]),
};

const jumps: Descriptor<"jumps"> = {
  kind: "jumps",
  key: (j) => `ipv4 ${j.table} ${j.hook} ${canonicalRule(jumpSpec(j))}`,
  compare: () => undefined,
  describe: (j) => `iptables jump ${j.hook} ${jumpSpec(j)} (${j.table})`,
  owned: (s, j) => !!s.chain?.(j.table, j.chain),
  render: (changes) =>
    changes.map((c) => {
      const j = c.object;
      if (c.op === "delete") return line("iptables", 2, `-D ${j.hook} ${jumpSpec(j)}`, j.table);
      return line("iptables", 3, j.first ? `-I ${j.hook} 1 ${jumpSpec(j)}` : `-A ${j.hook} ${jumpSpec(j)}`, j.table);
    }),
};

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

function qdiscSpec(q: Qdisc): string {
  const where = q.parent === "root" ? "root" : `parent ${q.parent}`;
  switch (q.kind) {
    case "htb":
      return `dev ${q.dev} ${where} handle ${q.handle} htb default ${(q.defaultClass ?? 0).toString(16)}`;
    case "tbf":
      return `dev ${q.dev} ${where} handle ${q.handle} tbf rate ${(q.rate ?? 0) * 8}bit burst ${q.burst}b limit ${q.limit}b`;
    case "fq_codel":
      return `dev ${q.dev} ${where} handle ${q.handle} fq_codel`;
    case "sfq":
      return `dev ${q.dev} ${where} handle ${q.handle} sfq perturb 10`;
  }
}

/**
 * A root that is already our HTB is changed in place (replacing an HTB root fails, and would drop
 * every class under it); anything else at the root is replaced by ours, and starts empty.
 */
const qdiscs: Descriptor<"qdiscs"> = {
  kind: "qdiscs",
  key: (q) => `${q.dev} ${q.parent}`,
  compare(have, want) {
    if (sameQdisc(have, want)) return undefined;
    const sameRoot = want.parent === "root" && have.kind === want.kind && have.handle === want.handle;
    return { op: sameRoot ? "change" : "replace", why: `is ${have.kind} ${have.handle}, different` };
  },
  describe: (q) =>
    q.parent === "root"
      ? `qdisc ${q.kind} ${q.handle} on ${q.dev}`
      : `qdisc ${q.kind} ${q.handle} on ${q.dev} (parent ${q.parent})`,
  owned: (s, q) => q.parent === "root" && !!s.tcRoot?.(q.dev),
  livesIn: (q) => [dev(q.dev)],
  resets: (c) => (c.object.parent === "root" && c.op !== "change" ? [tcRoot(c.object.dev)] : []),
  render: (changes) =>
    changes.map((c) => {
      const q = c.object;
      if (c.op === "delete") return line("tc", 0, `qdisc del dev ${q.dev} root`);
      if (c.op === "change") return line("tc", 2, `qdisc change ${qdiscSpec(q)}`);
      return line("tc", q.parent === "root" ? 3 : 6, `qdisc replace ${qdiscSpec(q)}`);
    }),
};

function classDifference(have: TcClass, want: TcClass): string {
  const out: string[] = [];
  if (have.parent !== want.parent) out.push(`parent ${have.parent} (want ${want.parent})`);
  for (const k of ["rate", "ceil", "burst", "cburst"] as const)
    if (!closeTo(have[k], want[k])) out.push(`${k} ${have[k]} (want ${want[k]})`);
  // The kernel prints no quantum for inner classes: it only applies to leaves.
  if (have.quantum !== 0 && have.quantum !== want.quantum) out.push(`quantum ${have.quantum} (want ${want.quantum})`);
  return out.join(", ");
}

const classSpec = (c: TcClass) =>
  `dev ${c.dev} parent ${c.parent} classid ${c.classid} htb rate ${c.rate}bit ceil ${c.ceil}bit burst ${c.burst}b cburst ${c.cburst}b quantum ${c.quantum}`;

/** Depth of a class below its device's root among `all`, so parents are added before children. */
function depth(c: TcClass, all: readonly TcClass[]): number {
  const parent = all.find((p) => p.dev === c.dev && p.classid === c.parent);
  return parent ? 1 + depth(parent, all) : 0;
}

/** Classes change in place (`tc class change`): no reset of counters or queues. */
const classes: Descriptor<"classes"> = {
  kind: "classes",
  key: (c) => `${c.dev} ${c.classid}`,
  compare(have, want) {
    const why = classDifference(have, want);
    return why ? { op: "change", why: `has ${why}` } : undefined;
  },
  describe: (c) => `class ${c.classid} on ${c.dev}`,
  owned: (s, c) => !!s.tcClass?.(c.dev, c.classid),
  livesIn: (c) => [dev(c.dev), tcRoot(c.dev)],
  render(changes) {
    const all = changes.map((c) => c.object);
    // Children are deleted before parents (a class's leaf qdisc goes with it), added after them.
    return changes.map((c) => {
      const x = c.object;
      if (c.op === "delete") return line("tc", 1 - depth(x, all) / 100, `class del dev ${x.dev} classid ${x.classid}`);
      if (c.op === "change") return line("tc", 5, `class change ${classSpec(x)}`);
      return line("tc", 4 + depth(x, all) / 100, `class add ${classSpec(x)}`);
    });
  },
};

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
  return out.join(", ");
}

/**
 * Each chain is first added plain (a no-op if it exists), then flushed and deleted, so a rewrite
 * and a removal both succeed whether or not it existed (nft 1.0.6 has no "destroy"); a rewrite
 * then adds it back with its hook and rules in the same transaction, so it is replaced whole or
 * not at all. Adding the table is a no-op when it exists.
 */
const nftChains: Descriptor<"nftChains"> = {
  kind: "nftChains",
  key: (c) => `${c.family} ${c.table} ${c.name}`,
  compare: (have, want) => {
    const why = nftDifference(have, want);
    return why ? { op: "replace", why } : undefined;
  },
  describe: (c) => `nftables chain ${c.name} (${c.family} ${c.table})`,
  owned: (s, c) => !!s.nftChain?.(c.table, c.name),
  render: (changes) => [
    ...[...new Set(changes.map((c) => `add table ${c.object.family} ${c.object.table}`))].map((t) => line("nft", 0, t)),
    ...changes.flatMap((c) => {
      const ch = c.object;
      const at = `${ch.family} ${ch.table} ${ch.name}`;
      return [
        line("nft", 1, `add chain ${at}`),
        line("nft", 1, `flush chain ${at}`),
        line("nft", 1, `delete chain ${at}`),
        ...(put(c)
          ? [
              `add chain ${at} { type filter hook ${ch.hook}${ch.device ? ` device "${ch.device}"` : ""} priority ${ch.priority}; policy ${ch.policy}; comment "${ch.comment}"; }`,
              ...ch.rules.map((r) => `add rule ${at} ${r}`),
            ].map((t) => line("nft", 2, t))
          : []),
      ];
    }),
  ],
};

const retool = (lines: Line[], tool: Tool) => lines.map((l) => ({ ...l, tool }));
const as6 = <K extends Kind>(d: Descriptor<K>) => d as unknown as Descriptor<Kind>;

/**
 * The IPv6 twins of rules, routes, sysctls, chains and jumps: the same objects compared the same
 * way, but the kernel keeps them apart, so they are kinds of their own, rendered for `ip -6
 * -batch` (ip takes no family per batch line, and infers none for a rule without addresses),
 * net/ipv6/conf and ip6tables-restore.
 */
const rules6 = {
  ...as6(rules),
  kind: "rules6",
  key: (r: Rule) => `inet6 ${r.table} ${r.fwmark}`,
  describe: (r: Rule) => `ip -6 rule fwmark ${r.fwmark} lookup ${r.table}`,
  render: (changes: Change[]) => retool(rules.render(changes as Change<"rules">[]), "ip6"),
} as unknown as Descriptor<"rules6">;

const routes6 = {
  ...as6(routes),
  kind: "routes6",
  key: (r: Route) => `inet6 ${r.table} ${r.dst}`,
  describe: (r: Route) => `IPv6 ${describeRoute(r)}`,
  render: (changes: Change[]) => retool(routes.render(changes as Change<"routes">[]), "ip6"),
} as unknown as Descriptor<"routes6">;

const sysctls6 = {
  ...as6(sysctls),
  kind: "sysctls6",
  key: (s: Sysctl) => `inet6 ${s.dev} ${s.name}`,
  describe: (s: Sysctl) => `sysctl IPv6 ${s.name} on ${s.dev}`,
  render: (changes: Change[]) =>
    (changes as Change<"sysctls">[]).map((c) =>
      line("sysctl", 0, `net/ipv6/conf/${c.object.dev}/${c.object.name}=${c.object.value}`),
    ),
} as unknown as Descriptor<"sysctls6">;

const chains6 = {
  ...as6(chains),
  kind: "chains6",
  key: (c: Chain) => `ipv6 ${c.table} ${c.name}`,
  describe: (c: Chain) => `ip6tables chain ${c.name} (${c.table})`,
  render: (changes: Change[]) => retool(chains.render(changes as Change<"chains">[]), "ip6tables"),
} as unknown as Descriptor<"chains6">;

const jumps6 = {
  ...as6(jumps),
  kind: "jumps6",
  key: (j: Jump) => `ipv6 ${j.table} ${j.hook} ${canonicalRule(jumpSpec(j))}`,
  describe: (j: Jump) => `ip6tables jump ${j.hook} ${jumpSpec(j)} (${j.table})`,
  render: (changes: Change[]) => retool(jumps.render(changes as Change<"jumps">[]), "ip6tables"),
} as unknown as Descriptor<"jumps6">;

export const DESCRIPTORS = [
  links,
  addresses,
  rules,
  routes,
  neighbours,
  sysctls,
  chains,
  jumps,
  qdiscs,
  classes,
  nftChains,
  rules6,
  routes6,
  sysctls6,
  chains6,
  jumps6,
] as const;

/** The batch lines of a change list, per tool and group, each group in stage order. */
export function render(changes: readonly AnyChange[]): Map<Tool, Map<string, string[]>> {
  const lines = DESCRIPTORS.flatMap((d) =>
    (d as unknown as Descriptor<Kind>).render(changes.filter((c) => c.kind === d.kind) as Change<Kind>[]),
  );
  const out = new Map<Tool, Map<string, string[]>>();
  for (const l of [...lines].sort((a, b) => a.stage - b.stage)) {
    const groups = out.get(l.tool) ?? out.set(l.tool, new Map()).get(l.tool)!;
    const group = groups.get(l.group) ?? groups.set(l.group, []).get(l.group)!;
    group.push(l.text);
  }
  return out;
}
