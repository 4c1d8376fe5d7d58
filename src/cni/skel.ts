/**
 * The CNI "skel": read the environment and stdin, check the version, dispatch to a verb, and
 * write exactly one JSON document to stdout (the result, or an error with a CNI code) — or
 * nothing for verbs that succeed silently. Everything a verb prints for people goes to stderr.
 * Modelled on containernetworking/cni's pkg/skel, which every reference plugin uses.
 */
import { CniError, ErrorCode } from "./errors.js";
import {
  aboutText,
  type CniEnv,
  type CniVersion,
  type Command,
  checkVersion,
  readEnv,
  SUPPORTED_VERSIONS,
  versionHas,
} from "./protocol.js";

export interface VerbContext {
  env: CniEnv;
  conf: Record<string, unknown>;
  stdin: string;
  version: CniVersion;
}

export type Verbs = Record<Exclude<Command, "VERSION">, (ctx: VerbContext) => Promise<unknown>>;

export interface Io {
  env: NodeJS.ProcessEnv;
  readStdin: () => Promise<string>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const LATEST: CniVersion = "1.1.0";

/** Runs one plugin invocation; returns the process exit code. */
export async function dispatch(name: string, about: string, verbs: Verbs, io: Io): Promise<number> {
  if (!io.env.CNI_COMMAND) {
    io.stderr(aboutText(name, about));
    return 0;
  }
  let version: string = LATEST;
  try {
    const env = readEnv(io.env);
    const stdin = await io.readStdin();
    let conf: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(stdin);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not a JSON object");
      conf = parsed as Record<string, unknown>;
    } catch (e) {
      throw new CniError(
        ErrorCode.DecodingFailure,
        `the network configuration on stdin is not a JSON object: ${(e as Error).message}`,
      );
    }
    if (typeof conf.cniVersion === "string" && (SUPPORTED_VERSIONS as readonly string[]).includes(conf.cniVersion))
      version = conf.cniVersion;
    if (env.command === "VERSION") {
      io.stdout(JSON.stringify({ cniVersion: version, supportedVersions: SUPPORTED_VERSIONS }));
      return 0;
    }
    const v = checkVersion(conf.cniVersion);
    if (!versionHas(v, env.command)) {
      throw new CniError(ErrorCode.IncompatibleVersion, `cniVersion ${v} does not define ${env.command}`);
    }
    const result = await verbs[env.command]({ env, conf, stdin, version: v });
    if (env.command === "ADD") io.stdout(JSON.stringify(result ?? { cniVersion: v }));
    return 0;
  } catch (e) {
    const err =
      e instanceof CniError ? e : new CniError(ErrorCode.Internal, e instanceof Error ? e.message : String(e));
    io.stdout(
      JSON.stringify({
        cniVersion: version,
        code: err.code,
        msg: err.message,
        ...(err.details ? { details: err.details } : {}),
      }),
    );
    io.stderr(
      `${name}: ${io.env.CNI_COMMAND} failed (code ${err.code}): ${err.message}${err.details ? ` (${err.details})` : ""}\n`,
    );
    return 1;
  }
}
