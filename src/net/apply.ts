/**
 * Turns Changes into as few processes as the kernel allows: one `ip -batch` for links,
 * addresses, rules, routes and neighbours; one `iptables-restore --noflush -w` for every table
 * (each table commits atomically); one `sysctl` for all sysctls and one `tc -batch` for all
 * traffic control (both after the links they name exist). The iptables batch does not depend
 * on the links, so it runs in parallel with `ip`. nftables tables go in one `nft -f -`: one
 * transaction, so a table is replaced whole or not at all.
 *
 * Every line is built from validated values (addresses, numbers, names matching the kernel's
 * rules), never from free text, so a batch cannot be steered by config or runtime args.
 */
import type { Changes, IptTable, Jump, NftTable, Route, VxlanLink } from "./desired-state.js";
import { jumpSpec } from "./desired-state.js";
import { run } from "./run.js";
import { renderTcBatch } from "./tc.js";

export function renderIpBatch(c: Changes): string[] {
  const lines: string[] = [];
  // Deletions first, so a re-added object with the same key does not collide.
  for (const r of c.delRoutes) lines.push(`route del ${routeSpec(r)}`);
  for (const r of c.delRules) lines.push(`rule del pref ${r.priority} fwmark ${r.fwmark} lookup ${r.table}`);
  for (const a of c.delAddresses) lines.push(`addr del ${a.local}${a.peer ? ` peer ${a.peer}` : `/${a.prefix}`} dev ${a.dev}`);
  for (const name of c.delLinks) lines.push(`link del dev ${name}`);
  for (const l of c.addLinks) lines.push(vxlanAdd(l), linkSet(l));
  for (const l of c.setLinks) lines.push(linkSet(l));
  for (const a of c.addAddresses) lines.push(`addr replace ${a.local}${a.peer ? ` peer ${a.peer}` : `/${a.prefix}`} dev ${a.dev}`);
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
 * `nft -f` input, or "" when nothing changes. "add table" before "delete table" makes the
 * delete succeed whether or not the table exists (nft 1.0.6 has no "destroy"), so a rewrite
 * and a removal are both idempotent, and a rewrite replaces every rule in the same transaction.
 */
export function renderNft(c: Changes): string {
  const out: string[] = [];
  for (const t of [...c.delNftTables, ...c.writeNftTables]) out.push(`add table ${t.family} ${t.name}`, `delete table ${t.family} ${t.name}`);
  for (const t of c.writeNftTables) out.push(nftTable(t));
  return out.length ? `${out.join("\n")}\n` : "";
}

function nftTable(t: NftTable): string {
  const lines = [`table ${t.family} ${t.name} {`, `\tcomment "${t.comment}"`];
  for (const ch of t.chains) {
    lines.push(`\tchain ${ch.name} {`, `\t\ttype filter hook ${ch.hook} device "${ch.device}" priority ${ch.priority}; policy ${ch.policy};`);
    for (const r of ch.rules) lines.push(`\t\t${r}`);
    lines.push("\t}");
  }
  lines.push("}");
  return lines.join("\n");
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
