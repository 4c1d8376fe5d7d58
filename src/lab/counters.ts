/**
 * The kernel's counters as tests read them: the one parser of each source, so that a test asks
 * "how many packets did this rule see" instead of splitting a tool's columns itself. iptables
 * counters come from `iptables-save -c` (`[packets:bytes] -A CHAIN rule`), the form both
 * backends print alike and whose rule text is what the plans write; protocol counters come from
 * /proc/net/snmp (IPv4: a header line and a value line per group) and /proc/net/snmp6 (IPv6: one
 * "Ip6FragCreates 0" line per counter).
 */
import { run } from "../net/run.js";
import { execIn } from "./traffic.js";

export interface RuleCounter {
  /** The rule as iptables-save prints it, without `-A CHAIN`. */
  rule: string;
  packets: number;
  bytes: number;
}

/** The counters of every rule of `chain` in `table` inside `ns`, in order (ip6tables with `family` 6). */
export async function ruleCounters(
  ns: string,
  table: string,
  chain: string,
  family: 4 | 6 = 4,
): Promise<RuleCounter[]> {
  const tool = family === 4 ? "iptables-save" : "ip6tables-save";
  const r = await run([...execIn(ns), tool, "-c", "-t", table]);
  const out: RuleCounter[] = [];
  for (const line of r.stdout.split("\n")) {
    const m = /^\[(\d+):(\d+)\] -A (\S+) (.*)$/.exec(line);
    if (m?.[3] === chain) out.push({ rule: m[4]!, packets: Number(m[1]), bytes: Number(m[2]) });
  }
  return out;
}

/** The packets the first rule of `chain` matching `rule` counted; throws when no rule matches. */
export async function rulePackets(
  ns: string,
  table: string,
  chain: string,
  rule: RegExp,
  family: 4 | 6 = 4,
): Promise<number> {
  const found = (await ruleCounters(ns, table, chain, family)).find((c) => rule.test(c.rule));
  if (!found) throw new Error(`no rule matching ${rule} in ${table} ${chain} inside ${ns}`);
  return found.packets;
}

/** A counter from /proc/net/snmp (e.g. "Ip", "FragFails") or, for an IPv6 group, /proc/net/snmp6 ("Ip6", "FragCreates"), inside `ns`. */
export async function snmpCounter(ns: string, group: string, name: string): Promise<number> {
  const six = group.endsWith("6");
  const r = await run([...execIn(ns), "cat", six ? "/proc/net/snmp6" : "/proc/net/snmp"]);
  const lines = r.stdout.split("\n");
  if (six) {
    const found = lines.map((l) => l.split(/\s+/)).find(([key]) => key === `${group}${name}`);
    if (!found) throw new Error(`no ${group}${name} in /proc/net/snmp6`);
    return Number(found[1]);
  }
  const rows = lines.filter((l) => l.startsWith(`${group}:`));
  const [header, values] = [rows[0]?.split(/\s+/) ?? [], rows[1]?.split(/\s+/) ?? []];
  const i = header.indexOf(name);
  if (i < 0) throw new Error(`no ${group} ${name} in /proc/net/snmp`);
  return Number(values[i]);
}
