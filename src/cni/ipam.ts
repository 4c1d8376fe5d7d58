/**
 * Delegation to an IPAM plugin, per the CNI conventions: the IPAM plugin is found by its `type`
 * in CNI_PATH and run with the same environment (CNI_COMMAND …) and the same network
 * configuration on stdin. ADD allocates, DEL releases, CHECK verifies.
 */
import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../net/run.js";
import { CniError, ErrorCode } from "./errors.js";

export async function findPlugin(type: string, path: readonly string[]): Promise<string> {
  for (const dir of path) {
    const file = join(dir, type);
    try {
      await access(file, constants.X_OK);
      return file;
    } catch {
      // not in this directory
    }
  }
  throw new CniError(
    ErrorCode.InvalidConfig,
    `IPAM plugin "${type}" was not found in CNI_PATH (${path.join(":") || "empty"})`,
  );
}

/** Runs the IPAM plugin for `command`; returns its parsed stdout (ADD) or undefined. */
export async function delegate(
  command: "ADD" | "DEL" | "CHECK" | "GC" | "STATUS",
  type: string,
  stdin: string,
  env: NodeJS.ProcessEnv,
  path: readonly string[],
): Promise<unknown> {
  const file = await findPlugin(type, path);
  const r = await run([file], { input: stdin, env: { ...env, CNI_COMMAND: command }, allowFailure: true });
  const out = r.stdout.trim();
  if (r.exitCode !== 0) {
    let msg = out || r.stderr.trim();
    let code: number = ErrorCode.Internal;
    try {
      const e = JSON.parse(out) as { code?: number; msg?: string; details?: string };
      msg = `${e.msg ?? msg}${e.details ? `: ${e.details}` : ""}`;
      code = e.code ?? code;
    } catch {
      // not a CNI error document: keep the raw text
    }
    throw new CniError(code, `IPAM plugin ${type} ${command} failed: ${msg}`);
  }
  if (command !== "ADD") return undefined;
  try {
    return JSON.parse(out) as unknown;
  } catch {
    throw new CniError(
      ErrorCode.DecodingFailure,
      `IPAM plugin ${type} printed something that is not JSON: ${out.slice(0, 200)}`,
    );
  }
}
