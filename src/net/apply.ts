/**
 * Runs a change list with as few processes as the kernel allows: one `ip -batch` for links,
 * addresses, rules, routes and neighbours; one `iptables-restore --noflush -w` for every table
 * (each table commits atomically); one `sysctl` for all sysctls and one `tc -batch` for all
 * traffic control (both after the links they name exist). The iptables batch does not depend
 * on the links, so it runs in parallel with `ip`. The `ip` batches may go to an observation's
 * own `ip` processes, still running (observe.ts): two processes fewer on a pod's ADD and DEL. nftables chains go in one `nft -f -`: one
 * transaction, so a chain is replaced whole or not at all. What each line says comes from the
 * kinds' descriptors (kinds.ts); this module only decides which process gets which lines.
 *
 * Every line is built from validated values (addresses, numbers, names matching the kernel's
 * rules), never from free text, so a batch cannot be steered by config or runtime args.
 */
import type { AnyChange } from "./desired-state.js";
import { render, type Tool } from "./kinds.js";
import type { Kept } from "./observe.js";
import { run, type Started } from "./run.js";

/** The input of each tool for a change list; a tool with nothing to do is absent. */
export interface Batches {
  ip?: string;
  /** `ip -6 -batch`: IPv6 rules and routes (after `ip`, which creates the devices they name). */
  ip6?: string;
  /** iptables-restore input for --noflush: one block per table, each committed atomically. */
  iptables?: string;
  ip6tables?: string;
  nft?: string;
  /** `sysctl -w` arguments. */
  sysctl?: string[];
  tc?: string;
}

export function renderBatches(changes: readonly AnyChange[]): Batches {
  const r = render(changes);
  const flat = (tool: Tool) => [...(r.get(tool)?.values() ?? [])].flat();
  const text = (lines: string[]) => (lines.length ? `${lines.join("\n")}\n` : undefined);
  const restore = (tool: Tool) =>
    [...(r.get(tool) ?? new Map<string, string[]>())]
      // Code-unit order, not localeCompare: its first call loads ICU's collator, at every pod's ADD.
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .flatMap(([table, lines]) => [`*${table}`, ...lines, "COMMIT"]);
  const ipt = restore("iptables");
  const ip6t = restore("ip6tables");
  const sysctl = flat("sysctl");
  return {
    ...(text(flat("ip")) ? { ip: text(flat("ip")) } : {}),
    ...(text(flat("ip6")) ? { ip6: text(flat("ip6")) } : {}),
    ...(text(ipt) ? { iptables: text(ipt) } : {}),
    ...(text(ip6t) ? { ip6tables: text(ip6t) } : {}),
    ...(text(flat("nft")) ? { nft: text(flat("nft")) } : {}),
    ...(sysctl.length ? { sysctl } : {}),
    ...(text(flat("tc")) ? { tc: text(flat("tc")) } : {}),
  };
}

/**
 * Applies the changes inside `netns`. Throws a CommandError naming the failed step. `kept`: the
 * observation's `ip` processes, still running in `netns`; the ip batches go to them (and they
 * are ended even when there is nothing to send) instead of to new processes.
 */
export async function apply(netns: string | undefined, changes: readonly AnyChange[], kept?: Kept): Promise<void> {
  const b = renderBatches(changes);
  const batch = async (argv: string[], input: string | undefined, tool: Started | undefined) => {
    if (tool) await tool.finish(input ?? "");
    else if (input) await run(argv, { netns, input });
  };
  // Sysctls and traffic control name devices, so they follow the ip batch that creates them.
  const ip = async () => {
    await batch(["ip", "-batch", "-"], b.ip, kept?.ip);
    await batch(["ip", "-6", "-batch", "-"], b.ip6, kept?.ip6);
    await Promise.all([
      b.sysctl ? run(["sysctl", "-q", "-w", ...b.sysctl], { netns }) : undefined,
      b.tc ? run(["tc", "-batch", "-"], { netns, input: b.tc }) : undefined,
    ]);
  };
  const iptables = async () => {
    await Promise.all([
      batch(["iptables-restore", "--noflush", "-w", "5"], b.iptables, kept?.iptables),
      batch(["ip6tables-restore", "--noflush", "-w", "5"], b.ip6tables, kept?.ip6tables),
    ]);
  };
  const nft = async () => {
    if (b.nft) await run(["nft", "-f", "-"], { netns, input: b.nft });
  };
  const results = await Promise.allSettled([ip(), iptables(), nft()]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}
