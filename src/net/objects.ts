/**
 * The objects of the desired-state vocabulary, as plain data: what a plan says and what
 * `observe` reads back, holding only the attributes that are compared. Kept apart from the
 * engine so the descriptors (kinds.ts) and the engine (desired-state.ts) both build on them.
 *
 * Every object is keyed by what the kernel keys it by (a device name, a table and priority, a
 * chain name), and everything an attachment owns carries its identity in those names and
 * numbers (see src/pod/names.ts); the address family is part of each key (IPv4 today, IPv6 as
 * new kinds), so objects of different attachments and families never share a key.
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
  /** A device name, "all" or "default". */
  dev: string;
  name: SysctlName;
  value: number;
  /** Other values that do as well (a tolerance): what is written is `value`. */
  accept?: number[];
}

export type IptTable = "filter" | "mangle" | "nat";

export interface Chain {
  table: IptTable;
  name: string;
  /** Rule specs without the leading "-A <chain>", in any form iptables accepts: compared by meaning (iptables-rule.ts). */
  rules: string[];
}

export interface Jump {
  table: IptTable;
  hook: "PREROUTING" | "INPUT" | "FORWARD" | "OUTPUT" | "POSTROUTING";
  /** Match before "-j", in any form iptables accepts (keyed by meaning); "" for none. */
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
 * A base chain we own in an nftables table: the netdev family hooks one device's ingress (the
 * node's enforcement), the ip6 family a hook of the whole namespace (the gateway's, which needs
 * conntrack, and so runs after it; `device` is then ""). Rules
 * are in `nft list`'s printed form (see canonicalNftRule), so observed and desired compare as
 * text; the comment names the owner, so GC can judge a chain from the kernel alone. The table is
 * shared (many owners' chains side by side, one per attachment), so ownership is per chain and
 * the table itself is never removed. One table, not one per attachment: nft fetches every
 * table's contents before each command, so per-attachment tables made each ADD cost O(pods)
 * (measured: 0.5-0.9 s at 100 pods vs 35 ms in one table).
 */
export interface NftChain {
  family: "netdev" | "ip6";
  table: string;
  name: string;
  hook: "ingress" | "prerouting";
  device: string;
  priority: number;
  policy: "accept" | "drop";
  comment: string;
  rules: string[];
}
