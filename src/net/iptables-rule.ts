/**
 * iptables rules compared by meaning, not by the text one iptables version prints.
 *
 * Plans write rule specs, and CHECK compares them with what `iptables-save` prints back. The
 * text depends on the binary: the nf_tables and legacy backends, and other versions, may print
 * a protocol as a name or a number, a host address with or without /32, a mark or u32 value in
 * hex or decimal, match modules in another order, a value quoted or not. Comparing text would
 * make CHECK fail forever and every ADD rewrite its chains on such a node; normalising through
 * the real binary would cost a process (and a scratch namespace) on the ADD path. So both sides
 * are parsed here into one canonical form — base options as a set, each match module with its
 * options as a set, the modules as a set, the target with its options — with every value
 * normalised by what the option means. Equal canonical forms are the same rule to the kernel;
 * a single differing value stays a difference.
 *
 * Match modules compare as a set because matches are a conjunction; that holds for the
 * stateless matches plans use (mark, tcp, udp, u32, conntrack, comment). Negation is read in
 * the prefix form (`! -s x`) that iptables-save has printed since 1.4.3.
 */
import { familyOf, formatCidr, parseCidr, parseIP } from "./ip.js";
import { memoByText } from "./memo.js";

/** The long spellings iptables accepts for base options, and the `-m`/`-j` words. */
const SHORT: Record<string, string> = {
  "--source": "-s",
  "--src": "-s",
  "--destination": "-d",
  "--dst": "-d",
  "--in-interface": "-i",
  "--out-interface": "-o",
  "--protocol": "-p",
  "--fragment": "-f",
  "--match": "-m",
  "--jump": "-j",
  "--goto": "-g",
};

const BASE = new Set(["-s", "-d", "-i", "-o", "-p", "-f"]);

/** /etc/protocols for the protocols a rule is likely to name; others stay numbers. */
const PROTOCOLS: Record<string, string> = {
  "0": "all",
  "1": "icmp",
  "6": "tcp",
  "17": "udp",
  "33": "dccp",
  "47": "gre",
  "50": "esp",
  "51": "ah",
  "58": "ipv6-icmp",
  "132": "sctp",
  "136": "udplite",
};

const TCP_FLAGS = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];

interface Option {
  negated: boolean;
  name: string;
  values: string[];
}

/**
 * Splits a rule as iptables-restore does: on blanks, with quoted strings kept whole. Never
 * throws: foreign rules are canonicalised too (their jumps are keyed), and an odd one must
 * only ever compare unequal, not break an ADD.
 */
export function tokenize(rule: string): string[] {
  if (!/["']/.test(rule)) return rule.split(/[ \t]+/).filter((t) => t !== "");
  const out: string[] = [];
  let current: string | undefined;
  let quote: string | undefined;
  for (let i = 0; i < rule.length; i++) {
    const c = rule[i]!;
    if (quote) {
      if (c === "\\" && rule[i + 1] === quote) current += rule[++i]!;
      else if (c === quote) quote = undefined;
      else current += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      current ??= "";
    } else if (c === " " || c === "\t") {
      if (current !== undefined) out.push(current);
      current = undefined;
    } else current = (current ?? "") + c;
  }
  if (current !== undefined) out.push(current);
  return out;
}

const isOption = (t: string) => /^--?[A-Za-z]/.test(t);

/** The options of a rule in order, each with its values and whether it was negated. */
function options(tokens: readonly string[]): Option[] {
  const out: Option[] = [];
  let negate = false;
  for (const t of tokens) {
    if (t === "!") negate = true;
    else if (isOption(t)) {
      out.push({ negated: negate, name: SHORT[t] ?? t, values: [] });
      negate = false;
    } else if (out.length) out[out.length - 1]!.values.push(t);
    else out.push({ negated: false, name: t, values: [] });
  }
  return out;
}

/** A number in any base iptables accepts (decimal or 0x hex), as a decimal string. */
function number(text: string): string | undefined {
  if (/^0x[0-9a-f]+$/i.test(text) || /^\d+$/.test(text)) return String(Number(text));
  return undefined;
}

/** A value, or a range "a:b", with its numbers in one base; anything else unchanged. */
const plain = (v: string) =>
  v
    .split(":")
    .map((p) => number(p) ?? p)
    .join(":");

/**
 * An address as the kernel stores it, network/prefix, of either family: "a.b.c.d", "a.b.c.d/n",
 * "a.b.c.d/m.m.m.m", and IPv6 with or without "/n" in any spelling (ip6tables prints RFC 5952).
 */
function address(v: string): string {
  const [host, mask] = v.split("/") as [string, string | undefined];
  const family = familyOf(host);
  if (family === undefined) return v;
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (mask !== undefined) {
    const dotted = family === 4 ? parseIP(mask, 4) : undefined;
    if (dotted !== undefined) {
      prefix = dotted.toString(2).replace(/0/g, "").length;
      if (dotted !== (((1n << 32n) - 1n) ^ ((1n << BigInt(32 - prefix)) - 1n))) return v;
    } else if (/^\d+$/.test(mask) && Number(mask) <= bits) prefix = Number(mask);
    else return v;
  }
  const cidr = parseCidr(`${host}/${prefix}`, false, family);
  return cidr ? formatCidr(cidr) : v;
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** "value[/mask]" as two hex numbers, the mask defaulting to all ones. */
function markPair(v: string): [number, number] | undefined {
  const [value, mask = "0xffffffff"] = v.split("/");
  const a = number(value ?? "");
  const b = number(mask);
  return a === undefined || b === undefined ? undefined : [Number(a), Number(b)];
}

const markValue = (v: string) => {
  const p = markPair(v);
  return p ? `${hex(p[0])}/${hex(p[1])}` : v;
};

/** Comma lists whose order means nothing; ALL and NONE spelled out for TCP flags. */
function flagList(v: string): string {
  const flags = v.toUpperCase().split(",");
  if (flags.includes("ALL")) return TCP_FLAGS.slice(0, 6).join(",");
  return TCP_FLAGS.filter((f) => flags.includes(f))
    .concat(flags.filter((f) => f !== "NONE" && !TCP_FLAGS.includes(f)).sort())
    .join(",");
}

const sortedList = (v: string) => v.toUpperCase().split(",").sort().join(",");

/** A u32 expression with blanks dropped and every number in hex. */
const u32 = (v: string) => v.replace(/\s+/g, "").replace(/0x[0-9a-f]+|\d+/gi, (n) => hex(Number(n)));

/** A tc class "major:minor", both hex without padding. */
function tcClass(v: string): string {
  const m = /^([0-9a-f]+):([0-9a-f]+)$/i.exec(v);
  return m ? `${Number.parseInt(m[1]!, 16).toString(16)}:${Number.parseInt(m[2]!, 16).toString(16)}` : v;
}

/** The canonical values of one option, by what the option means. */
function normalise(o: Option): Option {
  const vs = o.values;
  switch (o.name) {
    case "-s":
    case "-d":
      return { ...o, values: vs.map(address) };
    case "-p": {
      const p = vs[0]?.toLowerCase() ?? "";
      return { ...o, values: [PROTOCOLS[p] ?? p] };
    }
    case "--mark":
    case "--set-xmark":
      return { ...o, values: vs.map(markValue) };
    case "--set-mark": {
      // MARK --set-mark v/m is stored (and printed back) as --set-xmark v/(m|v).
      const p = markPair(vs[0] ?? "");
      return p ? { ...o, name: "--set-xmark", values: [`${hex(p[0])}/${hex((p[0] | p[1]) >>> 0)}`] } : o;
    }
    case "--tcp-flags":
      return { ...o, values: vs.map(flagList) };
    case "--ctstate":
    case "--state":
    case "--ctstatus":
      return { ...o, values: vs.map(sortedList) };
    case "--u32":
      return { ...o, values: vs.map(u32) };
    case "--set-class":
      return { ...o, values: vs.map(tcClass) };
    case "-i":
    case "-o":
    case "--comment":
      return o;
    default:
      return { ...o, values: vs.map(plain) };
  }
}

const show = (o: Option) =>
  `${o.negated ? "! " : ""}${o.name}${o.values.map((v) => (/^[\w.:/,+@-]+$/.test(v) ? ` ${v}` : ` "${v}"`)).join("")}`;

const sortedShow = (os: readonly Option[]) => os.map((o) => show(normalise(o))).sort();

/**
 * The canonical form of a rule spec (what follows "-A <chain>"): equal for rules the kernel
 * holds alike, different when any value differs. Remembered by rule text: a daemon compares the
 * same rules on every reconcile.
 */
export const canonicalRule: (rule: string) => string = memoByText(canonicalForm);

function canonicalForm(rule: string): string {
  const base: Option[] = [];
  const modules = new Map<string, Option[]>();
  let target: { option: Option; options: Option[] } | undefined;
  let module: Option[] | undefined;
  const protocol = () => normalise(base.find((o) => o.name === "-p") ?? { negated: false, name: "-p", values: [] });
  for (const o of options(tokenize(rule))) {
    if (o.name === "-m") {
      const name = o.values[0] ?? "";
      module = modules.get(name) ?? modules.set(name, []).get(name)!;
    } else if (o.name === "-j" || o.name === "-g") {
      target = { option: o, options: [] };
    } else if (BASE.has(o.name)) base.push(o);
    else if (target) target.options.push(o);
    else if (module) module.push(o);
    else {
      // Options before any -m belong to the protocol's implicit match (`-p tcp --dport 80`).
      const p = protocol().values[0] ?? "";
      module = modules.get(p) ?? modules.set(p, []).get(p)!;
      module.push(o);
    }
  }
  const p = protocol();
  // "-p all" is no protocol; "-p tcp -m tcp" without tcp options is "-p tcp".
  const baseShown = sortedShow(base.filter((o) => !(o.name === "-p" && p.values[0] === "all" && !o.negated)));
  const matches = [...modules]
    .filter(([name, os]) => os.length || name !== p.values[0])
    .map(([name, os]) => [`-m ${name}`, ...sortedShow(os)].join(" "))
    .sort();
  const jump = target ? [show(target.option), ...sortedShow(target.options)].join(" ") : "";
  return [...baseShown, ...matches, jump].filter((x) => x !== "").join(" ");
}

/** The first difference between two chains' rule lists, in words; "" when they are the same. */
export function rulesDifference(have: readonly string[], want: readonly string[]): string {
  const h = have.map(canonicalRule);
  const w = want.map(canonicalRule);
  const i = w.findIndex((r, n) => h[n] !== r);
  const at = i < 0 ? w.length : i;
  if (at < h.length && at < w.length) {
    const others = w.filter((r, n) => n !== at && h[n] !== r).length;
    return `rule ${at + 1} is "${have[at]}", want "${want[at]}"${others ? ` (and ${others} more rules differ)` : ""}`;
  }
  if (h.length === w.length) return "";
  const count = `has ${h.length} rule${h.length === 1 ? "" : "s"}, want ${w.length}`;
  return at < w.length
    ? `${count}: rule ${at + 1} "${want[at]}" is missing`
    : `${count}: rule ${at + 1} "${have[at]}" is extra`;
}
