/**
 * Turns Changes into as few processes as the kernel allows: one `ip -batch` for links,
 * addresses, rules, routes and neighbours; one `iptables-restore --noflush -w` for every table
 * (each table commits atomically); one `sysctl` for all sysctls and one `tc -batch` for all
 * traffic control (both after the links they name exist). The iptables batch does not depend
 * on the links, so it runs in parallel with `ip`. nftables chains go in one `nft -f -`: one
 * transaction, so a chain is replaced whole or not at all.
 *
 * Every line is built from validated values (addresses, numbers, names matching the kernel's
 * rules), never from free text, so a batch cannot be steered by config or runtime args.
 */
import type { Changes, IptTable, Jump, Route, VxlanLink } from "./desired-state.js";
import { jumpSpec } from "./desired-state.js";
import { run } from "./run.js";
import { renderTcBatch } from "./tc.js";

export function renderIpBatch(c: Changes): string[] {
  const lines: string[] = [];
  // Deletions first, so a re-added object with the same key does not collide.
  for (const r of c.delRoutes) lines.push(`route del ${routeSpec(r)}`);
  for (const r of c.delRules) lines.push(`rule del pref ${r.priority} fwmark ${r.fwmark} lookup ${r.table}`);
  for (const a of c.delAddresses)
    lines.push(`addr del ${a.local}${a.peer ? ` peer ${a.peer}` : `/${a.prefix}`} dev ${a.dev}`);
  for (const name of c.delLinks) lines.push(`link del dev ${name}`);
  for (const l of c.addLinks) lines.push(vxlanAdd(l), linkSet(l));
  for (const l of c.setLinks) lines.push(linkSet(l));
  for (const a of c.addAddresses)
    lines.push(`addr replace ${a.local}${a.peer ? ` peer ${a.peer}` : `/${a.prefix}`} dev ${a.dev}`);
  for (const r of c.addRules) lines.push(`rule add pref ${r.priority} fwmark ${r.fwmark} lookup ${r.table}`);
  for (const r of c.addRoutes) lines.push(`route replace ${routeSpec(r)}`);
  for (const n of c.delNeighbours) lines.push(`neigh del ${n.ip} dev ${n.dev}`);
  for (const n of c.addNeighbours) lines.push(`neigh replace ${n.ip} lladdr ${n.mac} dev ${n.dev} nud permanent`);
  return lines;
}

function vxlanAdd(l: VxlanLink): string {
  return [
    `link add ${l.name} type vxlan id ${l.vni} dstport ${l.port} local ${l.local}`,
    l.remote ? ` remote ${l.remote}` : "",
    ` dev ${l.dev} ${l.learning ? "learning" : "nolearning"} ageing ${l.ageing}`,
  ].join("");
}

function linkSet(l: VxlanLink): string {
  return `link set dev ${l.name} address ${l.mac} mtu ${l.mtu}${l.alias ? ` alias ${l.alias}` : ""} up`;
}

function routeSpec(r: Route): string {
  const head = r.type === "throw" ? `throw ${r.dst}` : r.dst;
  return `${head}${r.gateway ? ` via ${r.gateway}` : ""}${r.dev ? ` dev ${r.dev}` : ""}${r.onlink ? " onlink" : ""} table ${r.table}`;
}

const TABLES: IptTable[] = ["filter", "mangle", "nat"];

/** iptables-restore input (for --noflush), or "" when nothing changes. */
export function renderIptables(c: Changes): string {
  const out: string[] = [];
  for (const table of TABLES) {
    const write = c.writeChains.filter((ch) => ch.table === table);
    const del = c.delChains.filter((ch) => ch.table === table);
    const addJ = c.addJumps.filter((j) => j.table === table);
    const delJ = c.delJumps.filter((j) => j.table === table);
    if (!write.length && !del.length && !addJ.length && !delJ.length) continue;
    out.push(`*${table}`);
    // Declaring a chain creates it, or flushes it if it exists: either way it is then empty.
    for (const ch of [...write, ...del]) out.push(`:${ch.name} - [0:0]`);
    for (const ch of write) for (const rule of ch.rules) out.push(`-A ${ch.name} ${rule}`);
    for (const j of delJ) out.push(`-D ${j.hook} ${jumpSpec(j)}`);
    for (const j of addJ) out.push(jumpLine(j));
    for (const ch of del) out.push(`-X ${ch.name}`);
    out.push("COMMIT");
  }
  return out.length ? `${out.join("\n")}\n` : "";
}

function jumpLine(j: Jump): string {
  return j.first ? `-I ${j.hook} 1 ${jumpSpec(j)}` : `-A ${j.hook} ${jumpSpec(j)}`;
}

export function renderSysctls(c: Changes): string[] {
  // The slash form: a device name may contain dots (eth0.100), which the dotted form splits.
  return c.sysctls.map((s) => `net/ipv4/conf/${s.dev}/${s.name}=${s.value}`);
}

/**
 * `nft -f` input, or "" when nothing changes. Each chain is first added plain (a no-op if it
 * exists), then flushed and deleted, so a rewrite and a removal both succeed whether or not it
 * existed (nft 1.0.6 has no "destroy"); a rewrite then adds it back with its hook and rules in
 * the same transaction. Adding the table is a no-op when it exists.
 */
export function renderNft(c: Changes): string {
  const out: string[] = [];
  const tables = new Set([...c.delNftChains, ...c.writeNftChains].map((p) => `${p.family} ${p.table}`));
  for (const t of tables) out.push(`add table ${t}`);
  for (const { family, table, chain } of [...c.delNftChains, ...c.writeNftChains]) {
    const at = `${family} ${table} ${chain.name}`;
    out.push(`add chain ${at}`, `flush chain ${at}`, `delete chain ${at}`);
  }
  for (const { family, table, chain } of c.writeNftChains) {
    const at = `${family} ${table} ${chain.name}`;
    out.push(
      `add chain ${at} { type filter hook ${chain.hook} device "${chain.device}" priority ${chain.priority}; policy ${chain.policy}; comment "${chain.comment}"; }`,
    );
    for (const r of chain.rules) out.push(`add rule ${at} ${r}`);
  }
  return out.length ? `${out.join("\n")}\n` : "";
}

/** Applies the changes inside `netns`. Throws a CommandError naming the failed step. */
export async function apply(netns: string | undefined, c: Changes): Promise<void> {
  const ipLines = renderIpBatch(c);
  const ipt = renderIptables(c);
  const sysctls = renderSysctls(c);
  const tc = renderTcBatch(c);
  // Sysctls and traffic control name devices, so they follow the ip batch that creates them.
  const ip = async () => {
    if (ipLines.length) await run(["ip", "-batch", "-"], { netns, input: `${ipLines.join("\n")}\n` });
    await Promise.all([
      sysctls.length ? run(["sysctl", "-q", "-w", ...sysctls], { netns }) : undefined,
      tc.length ? run(["tc", "-batch", "-"], { netns, input: `${tc.join("\n")}\n` }) : undefined,
    ]);
  };
  const iptables = async () => {
    if (ipt) await run(["iptables-restore", "--noflush", "-w", "5"], { netns, input: ipt });
  };
  const nftScript = renderNft(c);
  const nft = async () => {
    if (nftScript) await run(["nft", "-f", "-"], { netns, input: nftScript });
  };
  const results = await Promise.allSettled([ip(), iptables(), nft()]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}
