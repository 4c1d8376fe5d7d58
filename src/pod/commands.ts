/**
 * The plugin's verbs. Each is plan + reconcile or observe + compare over the one desired-state
 * mechanism; what differs between them is only which desired state and what to do with the
 * differences:
 *   ADD   diff(plan, observed) → apply; on failure roll back to what was there before
 *   CHECK diff(plan, observed) must be empty; otherwise name every difference
 *   DEL   diff(nothing, observed) within our scope → apply; tolerant of a missing netns
 */
import { CniError, ErrorCode } from "../cni/errors.js";
import { delegate } from "../cni/ipam.js";
import type { CniEnv } from "../cni/protocol.js";
import { podAddress } from "../cni/result.js";
import { apply } from "../net/apply.js";
import { diff, EMPTY_STATE, type NetState, type Scope, within } from "../net/desired-state.js";
import { checkNetns, NetnsError } from "../net/netns.js";
import { observe, type Observed } from "../net/observe.js";
import { CommandError } from "../net/run.js";
import type { PluginConfig } from "./config.js";
import { parseConfig } from "./config.js";
import { checkOverlayAddress, deriveOverlayAddress } from "./overlay-address.js";
import { names, planPod, podScope } from "./plan.js";
import { type Attachment, selectGateway } from "./select-gateway.js";

export interface Invocation {
  env: CniEnv;
  /** The network configuration as parsed JSON. */
  conf: Record<string, unknown>;
  /** The exact stdin, passed on to an IPAM plugin. */
  stdin: string;
  /** The process environment, passed on to an IPAM plugin. */
  processEnv: NodeJS.ProcessEnv;
}

const log = (msg: string) => process.stderr.write(`tenant-egress: ${msg}\n`);

async function requireNetns(path: string): Promise<void> {
  try {
    if ((await checkNetns(path)) === "absent") throw new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${path} does not exist`);
  } catch (e) {
    if (e instanceof NetnsError) throw new CniError(ErrorCode.InvalidEnvironment, e.message);
    throw e;
  }
}

function applyError(verb: string, e: unknown): CniError {
  if (e instanceof CniError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new CniError(e instanceof CommandError ? ErrorCode.ApplyFailed : ErrorCode.Internal, `${verb} failed: ${msg}`);
}

/** The overlay address for ADD (allocating through IPAM if configured) and whether ADD allocated it. */
async function overlayForAdd(inv: Invocation, config: PluginConfig, a: Attachment, podIP: string): Promise<{ ip: string; allocated: boolean }> {
  if (a.overlayIP !== undefined) return { ip: checkOverlayAddress(a.overlayIP, a, "EGRESS_OVERLAY_IP"), allocated: false };
  if (!config.ipam) return { ip: deriveOverlayAddress(podIP, a), allocated: false };
  const result = (await delegate("ADD", config.ipam.type, inv.stdin, inv.processEnv, inv.env.path)) as { ips?: Array<{ address?: string }> };
  const address = result.ips?.[0]?.address?.split("/")[0] ?? "";
  try {
    return { ip: checkOverlayAddress(address, a, `IPAM plugin ${config.ipam.type}`, ErrorCode.InvalidConfig), allocated: true };
  } catch (e) {
    await releaseIpam(inv, config);
    throw e;
  }
}

async function releaseIpam(inv: Invocation, config: PluginConfig): Promise<void> {
  if (config.ipam) await delegate("DEL", config.ipam.type, inv.stdin, inv.processEnv, inv.env.path);
}

function underlayMtu(observed: Observed, ifname: string, podIP: string): number {
  const link = observed.links.find((l) => l.ifname === ifname);
  if (!link) throw new CniError(ErrorCode.InvalidEnvironment, `interface ${ifname} does not exist in the container's network namespace`);
  if (!observed.state.addresses.some((x) => x.dev === ifname && x.local === podIP)) {
    throw new CniError(ErrorCode.InvalidEnvironment, `interface ${ifname} does not hold ${podIP}, the address prevResult gives it`);
  }
  return link.mtu;
}

export async function cmdAdd(inv: Invocation): Promise<unknown> {
  const config = parseConfig(inv.conf);
  const { ifname, netns } = inv.env;
  const pod = podAddress(config.prevResult, ifname);
  const a = selectGateway(config, inv.env.args);
  if (!a) return config.prevResult;
  await requireNetns(netns);
  if (a.gateway === pod.ip) throw new CniError(ErrorCode.InvalidConfig, `the gateway ${a.gateway} (from ${a.source}) is the pod's own address`);

  const overlay = await overlayForAdd(inv, config, a, pod.ip);
  const scope = podScope(config, ifname);
  let before: Observed | undefined;
  try {
    before = await observe(netns, { tables: [config.routeTable] });
    const desired = planPod(config, a, { ifname, podIP: pod.ip, overlayIP: overlay.ip, underlayMtu: underlayMtu(before, ifname, pod.ip) });
    await apply(netns, diff(desired, before.state, scope));
  } catch (e) {
    const err = applyError("ADD", e);
    if (before) await rollback(netns, within(before.state, scope), scope, [config.routeTable]);
    if (overlay.allocated) await releaseIpam(inv, config).catch((r: Error) => log(`releasing the overlay address after a failed ADD: ${r.message}`));
    throw err;
  }
  return config.prevResult;
}

/** Reconciles back to `target` after a failed ADD; logs (never throws) so the ADD's own error is what the runtime sees. */
async function rollback(netns: string, target: NetState, scope: Scope, tables: number[]): Promise<void> {
  try {
    const now = await observe(netns, { tables });
    await apply(netns, diff(target, now.state, scope));
  } catch (e) {
    log(`rolling back a failed ADD: ${(e as Error).message}`);
  }
}

export async function cmdDel(inv: Invocation): Promise<void> {
  const config = parseConfig(inv.conf);
  const { ifname, netns } = inv.env;
  let status: "present" | "absent" = "absent";
  if (netns !== "") {
    try {
      status = await checkNetns(netns);
    } catch (e) {
      throw new CniError(ErrorCode.InvalidEnvironment, (e as Error).message);
    }
  }
  if (status === "present") {
    try {
      const observed = await observe(netns, { tables: [config.routeTable] });
      await apply(netns, diff(EMPTY_STATE, observed.state, podScope(config, ifname)));
    } catch (e) {
      // The namespace may vanish between the check and the commands: then there is nothing left to remove.
      if ((await checkNetns(netns).catch(() => "absent")) === "present") throw applyError("DEL", e);
    }
  }
  await releaseIpam(inv, config);
}

export async function cmdCheck(inv: Invocation): Promise<void> {
  const config = parseConfig(inv.conf);
  const { ifname, netns } = inv.env;
  const pod = podAddress(config.prevResult, ifname);
  const a = selectGateway(config, inv.env.args);
  await requireNetns(netns);
  const scope = podScope(config, ifname);
  const observed = await observe(netns, { tables: [config.routeTable] });
  let desired: NetState = EMPTY_STATE;
  if (a) {
    let overlayIP: string;
    if (a.overlayIP !== undefined) overlayIP = checkOverlayAddress(a.overlayIP, a, "EGRESS_OVERLAY_IP");
    else if (config.ipam) {
      await delegate("CHECK", config.ipam.type, inv.stdin, inv.processEnv, inv.env.path);
      const device = names(ifname).device;
      overlayIP = observed.state.addresses.find((x) => x.dev === device)?.local ?? "";
      if (!overlayIP) throw new CniError(ErrorCode.AttachmentMismatch, `CHECK: the overlay address on ${device} is missing`);
    } else overlayIP = deriveOverlayAddress(pod.ip, a);
    desired = planPod(config, a, { ifname, podIP: pod.ip, overlayIP, underlayMtu: underlayMtu(observed, ifname, pod.ip) });
  }
  const changes = diff(desired, observed.state, scope);
  if (changes.problems.length) {
    throw new CniError(ErrorCode.AttachmentMismatch, `CHECK: ${changes.problems.join("; ")}`, a ? `gateway ${a.gateway} from ${a.source}` : "no gateway selected for this pod");
  }
}

export async function cmdGc(inv: Invocation): Promise<void> {
  const config = parseConfig(inv.conf);
  // Everything ADD makes lives inside the pod's namespace and dies with it; only IPAM
  // allocations outlive a pod, so GC is the IPAM plugin's.
  if (config.ipam) await delegate("GC", config.ipam.type, inv.stdin, inv.processEnv, inv.env.path);
}

/** The tools every verb needs. STATUS runs every few seconds: it only looks at PATH, it runs nothing. */
export const REQUIRED_TOOLS = ["ip", "iptables-restore", "iptables-save", "nsenter", "sysctl"];

export async function cmdStatus(inv: Invocation, findTool: (name: string) => Promise<boolean>): Promise<void> {
  const config = parseConfig(inv.conf);
  const missing: string[] = [];
  for (const tool of REQUIRED_TOOLS) if (!(await findTool(tool))) missing.push(tool);
  if (missing.length) {
    throw new CniError(ErrorCode.PluginNotAvailable, `required tools not found in PATH: ${missing.join(", ")}`, "install iproute2, iptables, util-linux and procps");
  }
  if (config.ipam) await delegate("STATUS", config.ipam.type, inv.stdin, inv.processEnv, inv.env.path);
}
