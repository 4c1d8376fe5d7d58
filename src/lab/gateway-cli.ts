/**
 * Runs the built tenant-egress-gateway inside a lab namespace, as an operator would run it
 * inside a gateway pod, with its configuration written to the lab's scratch directory.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run, type RunResult } from "../net/run.js";
import { distDir } from "./cni-client.js";

export async function gatewayCli(ns: string, args: string[]): Promise<RunResult> {
  return run(["ip", "netns", "exec", ns, join(distDir(), "tenant-egress-gateway"), ...args], { allowFailure: true });
}

/** Writes `config` and applies it; throws with the CLI's own words if it fails. */
export async function applyGateway(ns: string, dir: string, config: unknown): Promise<RunResult> {
  const file = join(dir, `${ns}-gateway.json`);
  await writeFile(file, JSON.stringify(config, null, 2));
  const r = await gatewayCli(ns, ["apply", "-f", file]);
  if (r.exitCode !== 0) throw new Error(`tenant-egress-gateway apply failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  return r;
}
