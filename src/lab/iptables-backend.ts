/**
 * Which iptables backend the lab's commands (and so the plugin and gateway they run) use. Debian
 * ships both: `iptables` is the nf_tables one, `iptables-legacy*` the x_tables one, and a node may
 * use either. The plugin and gateway use whatever `iptables-restore`/`iptables-save` PATH reaches,
 * as the reference plugins do, so with TENANT_EGRESS_IPTABLES=legacy the lab puts a directory
 * first in PATH whose iptables, ip6tables and their -save/-restore are the legacy binaries: every
 * process the tests start — cnitool, the plugin, the gateway, the tests' own iptables calls — then
 * runs on legacy.
 */
import { mkdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const TOOLS = ["iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"];

/** Applies TENANT_EGRESS_IPTABLES to this process's PATH; returns the backend in use. */
export function useIptablesBackend(env: NodeJS.ProcessEnv = process.env): "nft" | "legacy" {
  const backend = env.TENANT_EGRESS_IPTABLES ?? "nft";
  if (backend === "nft") return "nft";
  if (backend !== "legacy") throw new Error(`TENANT_EGRESS_IPTABLES must be nft or legacy, not "${backend}"`);
  const dir = join(tmpdir(), `tenant-egress-iptables-legacy-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  for (const tool of TOOLS) {
    const [family, ...rest] = tool.split("-");
    symlinkSync(`/usr/sbin/${[`${family}-legacy`, ...rest].join("-")}`, join(dir, tool));
  }
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  env.PATH = `${dir}:${env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`;
  return "legacy";
}
