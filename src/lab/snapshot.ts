/**
 * A namespace's network state as comparable text: links, addresses, rules, every routing
 * table, iptables rules and user chains, netdev-family nftables tables (the node's enforcement),
 * qdiscs and the relevant sysctls. Tests compare it
 * before and after a plugin run; the demo compares the root namespace before and after itself,
 * to prove it left the machine as it found it.
 */
import { run } from "../net/run.js";

/** Snapshot of namespace `ns` (a name under /run/netns), or of the current one when omitted. */
export async function netnsSnapshot(ns?: string): Promise<string> {
  const inNs = (argv: string[]) => (ns ? ["ip", "netns", "exec", ns, ...argv] : argv);
  const [ip, ipt, nft, tc, sysctl] = await Promise.all([
    run(inNs(["ip", "-d", "-batch", "-"]), { input: "link show\naddr show\nrule show\nroute show table all\n" }),
    run(inNs(["iptables-save"])),
    run(inNs(["nft", "list", "ruleset", "netdev"])),
    run(inNs(["tc", "qdisc", "show"])),
    run(inNs(["sh", "-c", "cat /proc/sys/net/ipv4/conf/*/rp_filter /proc/sys/net/ipv4/ip_forward"])),
  ]);
  // Rules and user chains only: counters change, and an empty table iptables-nft leaves behind holds nothing.
  const rules = ipt.stdout
    .split("\n")
    .filter((l) => l.startsWith("-A ") || (l.startsWith(":") && !/^:[A-Z]+ (ACCEPT|DROP)/.test(l)));
  // Bridge timers count down and HTB counts packets by themselves: keep the names, drop the values.
  const links = ip.stdout.replace(/\b(\w+_timer)\s+[\d.]+/g, "$1");
  const qdiscs = tc.stdout.replace(/direct_packets_stat \d+/g, "direct_packets_stat");
  // Likewise an nftables table with no chain in it (the node's shared enforcement table, once its
  // last attachment is gone: kept, like the bridge the main plugin leaves, because deleting it
  // could race a parallel ADD's chain).
  const tables = nft.stdout.replace(/^table \S+ \S+ \{\s*\}\n?/gm, "");
  return [links, rules.join("\n"), tables, qdiscs, sysctl.stdout].join("\n");
}

/** The node's enforcement chains (one per enforced attachment), counted. */
export async function enforcementChains(ns: string): Promise<number> {
  const r = await run(["ip", "netns", "exec", ns, "nft", "list", "table", "netdev", "tenant-egress"], {
    allowFailure: true,
  });
  return r.stdout.split("\n").filter((l) => /^\s*chain /.test(l)).length;
}

/**
 * Waits until a namespace's links have carrier and no address is still in IPv6 duplicate
 * address detection: before that, a snapshot changes by itself within a second or two.
 */
export async function waitSettled(ns: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [links, tentative] = await Promise.all([
      run(["ip", "-n", ns, "-o", "link", "show", "up"]),
      run(["ip", "-n", ns, "-o", "addr", "show", "tentative"]),
    ]);
    if (!/NO-CARRIER/.test(links.stdout) && tentative.stdout.trim() === "") return;
    if (Date.now() > deadline) throw new Error(`namespace ${ns} did not settle: ${links.stdout}${tentative.stdout}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
