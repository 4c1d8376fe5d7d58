/**
 * One vocabulary for the network state this project owns, and the one engine that compares it.
 * Both halves speak it: the pod plan and the gateway plan produce a NetState, `observe` reads one
 * back from a namespace, and `diff` turns (desired, observed, scope) into a typed change list
 * `{kind, op, object}`. Everything else is derived from that list: CHECK's messages
 * (`problems`), the batches `apply` runs, and the gateway's "changed N things".
 *
 * Each kind of object (link, address, rule, …) is described once, by a descriptor in kinds.ts:
 * its key, how an observed object is compared with a desired one (with tolerance where the
 * kernel rounds), how it is named in words, whether a scope owns it, and how its changes render
 * to batch lines. A new kind of state (IPv6 routes, ip6tables chains) is a new descriptor; this
 * engine does not change.
 *
 * Why a Scope: what we own is decided by name (our device, our table, our chains), not by what
 * a plan happens to contain. DEL has no prevResult to plan from, and the gateway must remove a
 * tenant that is no longer in its file; both are "desired = nothing, within our scope". ADD,
 * CHECK, DEL and the gateway's reconcile are then one mechanism: CHECK is a diff that must be
 * empty, DEL a diff against the empty state.
 */
import { DESCRIPTORS, type Descriptor } from "./kinds.js";
import type {
  Address,
  Chain,
  IptTable,
  Jump,
  Neighbour,
  NftChain,
  Qdisc,
  Route,
  Rule,
  Sysctl,
  TcClass,
  VxlanLink,
} from "./objects.js";

export type * from "./objects.js";

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
  nftChains: NftChain[];
  /** IPv6 twins the kernel keeps apart from their IPv4 kinds (`ip -6 rule`/`route`, net/ipv6/conf, ip6tables). */
  rules6: Rule[];
  routes6: Route[];
  sysctls6: Sysctl[];
  chains6: Chain[];
  jumps6: Jump[];
}

export type Kind = keyof NetState;
export type ObjectOf<K extends Kind> = NetState[K][number];

/** A fresh empty state: callers may push into it, so it is never shared. */
export function emptyState(): NetState {
  return {
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
    nftChains: [],
    rules6: [],
    routes6: [],
    sysctls6: [],
    chains6: [],
    jumps6: [],
  };
}

/** A state with only the given kinds filled in. */
export const stateOf = (parts: Partial<NetState>): NetState => ({ ...emptyState(), ...parts });

/**
 * What belongs to us in a namespace, by name: everything else is never touched. A missing
 * predicate owns nothing of that kind.
 */
export interface Scope {
  link?(name: string): boolean;
  rule?(rule: Rule): boolean;
  routeTable?(table: number): boolean;
  chain?(table: IptTable, name: string): boolean;
  /** Devices whose root qdisc is ours. */
  tcRoot?(dev: string): boolean;
  /** HTB classes that are ours (under a root of ours). */
  tcClass?(dev: string, classid: string): boolean;
  /** nftables chains that are ours (by table and name). */
  nftChain?(table: string, chain: string): boolean;
}

/**
 * add: missing; change: fixed in place (`ip link set`, `tc class change`, `route replace`);
 * replace: removed and created again (`have` goes, `object` comes); delete: left over.
 */
export type Op = "add" | "change" | "replace" | "delete";

export interface Change<K extends Kind = Kind> {
  kind: K;
  op: Op;
  /** The desired object; for a delete, the observed one. */
  object: ObjectOf<K>;
  /** The observed object a change or replace starts from. */
  have?: ObjectOf<K>;
  /** What differs, in words (change and replace). */
  why?: string;
  /** A consequence of another change (re-adding an address to a recreated link): applied, not reported. */
  quiet?: boolean;
}

export type AnyChange = { [K in Kind]: Change<K> }[Kind];

/**
 * The changes that turn `observed` into `desired` within `scope`. Objects outside the scope are
 * never deleted; objects inside it that the desired state lacks are. Kinds are compared in
 * DESCRIPTORS' order, so a change to a container (a link recreated, a qdisc root replaced) is
 * known before the objects that live in it: those are then gone from the observation, re-added
 * quietly, and never deleted separately.
 */
export function diff(desired: NetState, observed: NetState, scope: Scope): AnyChange[] {
  const out: AnyChange[] = [];
  const reset = new Set<string>();
  for (const d of DESCRIPTORS) diffKind(d as unknown as Descriptor<Kind>, desired, observed, scope, reset, out);
  return out;
}

function diffKind<K extends Kind>(
  d: Descriptor<K>,
  desired: NetState,
  observed: NetState,
  scope: Scope,
  reset: Set<string>,
  out: AnyChange[],
): void {
  const gone = (o: ObjectOf<K>) => (d.livesIn?.(o) ?? []).some((c) => reset.has(c));
  const seen = new Map<string, ObjectOf<K>>();
  for (const o of observed[d.kind] as ObjectOf<K>[]) if (!gone(o)) seen.set(d.key(o), o);
  const mine: Change<K>[] = [];
  const wanted = new Set<string>();
  for (const want of desired[d.kind] as ObjectOf<K>[]) {
    const key = d.key(want);
    wanted.add(key);
    const have = seen.get(key);
    if (!have) {
      const inherited = d.inherited?.(want, (k) => seen.get(k));
      if (inherited && !d.compare(inherited, want)) continue;
      mine.push({ kind: d.kind, op: "add", object: want, ...(gone(want) ? { quiet: true } : {}) });
      continue;
    }
    const difference = d.compare(have, want);
    if (difference) mine.push({ kind: d.kind, op: difference.op, object: want, have, why: difference.why });
  }
  for (const [key, have] of seen)
    if (!wanted.has(key) && d.owned(scope, have)) mine.push({ kind: d.kind, op: "delete", object: have });
  for (const c of mine) for (const r of d.resets?.(c) ?? []) reset.add(r);
  out.push(...(mine as unknown as AnyChange[]));
}

const changesOf = <K extends Kind>(changes: readonly AnyChange[], kind: K) =>
  changes.filter((c) => c.kind === kind) as unknown as Change<K>[];

/** Every change that is not a consequence of another, in words: CHECK's message, apply's report. */
export function problems(changes: readonly AnyChange[]): string[] {
  return DESCRIPTORS.flatMap((d) => {
    const own = changesOf(changes, d.kind).filter((c) => !c.quiet);
    if (!own.length) return [];
    const desc = d as unknown as Descriptor<Kind>;
    return desc.summarize ? desc.summarize(own) : own.map((c) => message(desc, c));
  });
}

function message<K extends Kind>(d: Descriptor<K>, c: Change<K>): string {
  const what = d.describe(c.object);
  if (c.op === "add") return `${what} is missing`;
  if (c.op === "delete") return `${what} is left over`;
  return `${what} ${c.why}`;
}

/**
 * The part of `state` inside `scope`. A failed ADD is rolled back by reconciling towards what
 * was observed before it, restricted to our scope: what the ADD created goes, what it replaced
 * comes back, and nothing else is touched.
 */
export function within(state: NetState, scope: Scope): NetState {
  const out = emptyState();
  for (const d of DESCRIPTORS) {
    const desc = d as unknown as Descriptor<Kind>;
    (out[d.kind] as ObjectOf<Kind>[]) = (state[d.kind] as ObjectOf<Kind>[]).filter((o) => desc.owned(scope, o));
  }
  return out;
}
