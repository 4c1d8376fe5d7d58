/**
 * The CNI runtime contract as data: the environment variables a runtime sets, the versions we
 * speak, and the rules for matching them. Kept free of I/O so it can be tested exhaustively.
 */
import { CniError, ErrorCode, envError } from "./errors.js";

export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

export type Command = "ADD" | "DEL" | "CHECK" | "VERSION" | "STATUS" | "GC";
const COMMANDS = new Set<string>(["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"]);

/** Exact match only: a runtime that asks for 0.4.1 gets code 1, never a guess. */
export function checkVersion(version: unknown): CniVersion {
  if (typeof version !== "string" || version === "") {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      "cniVersion is missing from the network configuration",
      `supported: ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  }
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `cniVersion ${JSON.stringify(version)} is not supported`,
      `supported: ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  }
  return version as CniVersion;
}

/** Which verbs a version defines: asking for STATUS or GC under 1.0.0 is an error, not a no-op. */
export function versionHas(version: CniVersion, command: Command): boolean {
  if (command === "GC" || command === "STATUS") return version === "1.1.0";
  if (command === "CHECK") return version !== "0.3.0" && version !== "0.3.1";
  return true;
}

export interface CniEnv {
  command: Command;
  containerId: string;
  netns: string;
  ifname: string;
  /** Parsed CNI_ARGS ("K=V;K=V"). */
  args: Map<string, string>;
  path: string[];
}

/** Container IDs: the spec allows alphanumerics plus '_', '.', '-', starting alphanumeric. */
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** Interface names: 1–15 characters the kernel and iptables both take literally (no "/", ":", spaces, or "+", which iptables reads as a wildcard). */
const IFNAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

export function isValidIfname(name: string): boolean {
  return IFNAME.test(name) && name !== "." && name !== "..";
}

export function parseCniArgs(text: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!text) return out;
  for (const pair of text.split(";")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) throw envError(`CNI_ARGS: "${pair}" is not KEY=VALUE`);
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return out;
}

/**
 * Reads and validates the environment for `command`. Verbs that act on a container need its
 * ID and interface; DEL tolerates a missing netns (the container may be gone).
 */
export function readEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND ?? "";
  if (!COMMANDS.has(command))
    throw envError(`CNI_COMMAND ${JSON.stringify(command)} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC`);
  const cmd = command as Command;
  const containerId = env.CNI_CONTAINERID ?? "";
  const netns = env.CNI_NETNS ?? "";
  const ifname = env.CNI_IFNAME ?? "";
  const perContainer = cmd === "ADD" || cmd === "DEL" || cmd === "CHECK";
  if (perContainer) {
    if (!CONTAINER_ID.test(containerId))
      throw envError(
        `CNI_CONTAINERID ${JSON.stringify(containerId)} is missing or has characters other than letters, digits, '_', '.', '-'`,
      );
    if (!isValidIfname(ifname))
      throw envError(
        `CNI_IFNAME ${JSON.stringify(ifname)} is not a valid interface name (1-15 characters, no '/' or spaces)`,
      );
    if (cmd !== "DEL" && netns === "") throw envError(`CNI_NETNS is required for ${cmd}`);
    if (netns !== "" && (!netns.startsWith("/") || netns.includes("\n")))
      throw envError(`CNI_NETNS ${JSON.stringify(netns)} must be an absolute path`);
  }
  return {
    command: cmd,
    containerId,
    netns,
    ifname,
    args: parseCniArgs(env.CNI_ARGS ?? ""),
    path: (env.CNI_PATH ?? "").split(":").filter(Boolean),
  };
}

/** The about text printed when a person runs the plugin by hand (no CNI_COMMAND). */
export function aboutText(name: string, version: string): string {
  return `${name} ${version}: CNI chained plugin that steers a pod's public traffic through VXLAN to its tenant's egress gateway.
CNI protocol versions: ${SUPPORTED_VERSIONS.join(", ")}
This program is run by a container runtime with CNI_COMMAND set (ADD, DEL, CHECK, VERSION, STATUS, GC)
and the network configuration on stdin. See the README for the configuration reference.
`;
}
