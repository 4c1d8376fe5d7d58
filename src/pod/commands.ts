/**
 * The plugin's verbs. Each is plan + reconcile or observe + compare over the one desired-state
 * mechanism, applied to up to two targets: the pod's namespace, and — with `enforce` — the
 * node's own namespace, where the enforcement rules live. What differs between verbs is only
 * the desired state and what is done with the differences:
 *   ADD   diff(plan, observed) → apply; on failure, reconcile back to what was observed before
 *   CHECK diff(plan, observed) must be empty; otherwise name every difference
 *   DEL   diff(nothing, observed) within what this attachment owns → apply
 *   GC    diff(nothing, observed) within enforcement chains of attachments no longer valid
 */
import { CniError, ErrorCode } from "../cni/errors.js";
import { mayHoldIpv6 } from "../cni/families.js";
import { delegate } from "../cni/ipam.js";
import type { CniEnv } from "../cni/protocol.js";
import { type PodAddresses, podAddresses, podIdentity } from "../cni/result.js";
import { apply } from "../net/apply.js";
import { diff, emptyState, type NetState, problems, type Scope, stateOf, within } from "../net/desired-state.js";
import { familyOf } from "../net/ip.js";
import { checkNetns, NetnsError } from "../net/netns.js";
import type { Route } from "../net/objects.js";
import {
  EVERY_TABLE,
  endKept,
  type NodeReads,
  type Observed,
  observeNftTable,
  type PendingObservation,
  startNodeReads,
  startObserve,
} from "../net/observe.js";
import { CommandError } from "../net/run.js";
import { trace } from "../net/trace.js";
import type { PluginConfig } from "./config.js";
import { parseConfig } from "./config.js";
import { enforcementScope, hostSide, planEnforcement, staleEnforcement } from "./enforce.js";
import { ENFORCE_TABLE, enforceNames, names } from "./names.js";
import { checkOverlayAddress, deriveOverlayAddress } from "./overlay-address.js";
import { planPod, podScope } from "./plan.js";
import { type Attachment, selectGateway } from "./select-gateway.js";
import { chooseSlot, recordedSlot, type Slot } from "./slots.js";

const MAIN_TABLE = 254;

/** Whether `ifname` holds the main table's default route (of the family `routes` are). */
const holdsDefault = (routes: readonly Route[], ifname: string) =>
  routes.some((r) => r.table === MAIN_TABLE && r.dst === "default" && r.dev === ifname);

export interface Invocation {
  env: CniEnv;
  /** The network configuration as parsed JSON. */
  conf: Record<string, unknown>;
  /** The exact stdin, passed on to an IPAM plugin. */
  stdin: string;
  /** The process environment, passed on to an IPAM plugin. */
  processEnv: NodeJS.ProcessEnv;
  /** The reads the main started already. */
  early?: EarlyReads;
}

/** Reads the main starts before the verbs are loaded; each gives its read once (then undefined). */
export interface EarlyReads {
  /** The pod's namespace. */
  pod(): PendingObservation | undefined;
  /** The node's reads (the attachment's enforcement chain, the veths when asked), if they are the ones the main started. */
  node(chain: string, withVeths: boolean): NodeReads | undefined;
}

/** One namespace to reconcile: the pod's, or the node's own (netns undefined). */
interface Target {
  netns: string | undefined;
  /** Prefix for CHECK's problems, so an operator knows where to look. */
  where: string;
  /** What is ours, from what this target observed (a pod's attachment records its slot in the kernel). */
  scope(observed: Observed): Scope;
  observe(): Promise<Observed>;
  /** From what this target observed; the node's enforcement also needs what the pod's target observed. */
  desired(observed: Observed, pod: Observed | undefined): NetState;
}

const log = (msg: string) => process.stderr.write(`tenant-egress: ${msg}\n`);

async function requireNetns(path: string): Promise<void> {
  try {
    if ((await checkNetns(path)) === "absent")
      throw new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${path} does not exist`);
  } catch (e) {
    if (e instanceof NetnsError) throw new CniError(ErrorCode.InvalidEnvironment, e.message);
    throw e;
  }
}

/** A tool that failed (to observe or to apply) is ApplyFailed with its hint; anything else is Internal. */
function applyError(verb: string, e: unknown): CniError {
  if (e instanceof CniError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new CniError(e instanceof CommandError ? ErrorCode.ApplyFailed : ErrorCode.Internal, `${verb} failed: ${msg}`);
}

/** The slots whose rules and tables are this attachment's: the one it holds, and the one ADD would give it. */
function ownSlots(config: PluginConfig, o: Observed, ifname: string): Slot[] {
  const held = recordedSlot(o.state, ifname);
  let wanted: Slot | undefined;
  try {
    wanted = chooseSlot(config, o.state, ifname);
  } catch {
    // No free slot: then only what the attachment already holds is its own.
  }
  return [held, wanted].filter((s): s is Slot => s !== undefined);
}

/**
 * The pod's namespace. Every routing table is read (one `ip route show table all`): DEL must
 * find the table the attachment recorded, whatever the configuration says now. Its first
 * observation may already be under way (started by the main). IPv6 is read when the prevResult
 * may have given the attachment IPv6 state (families.ts), or when the tunnel turns out to hold
 * an IPv6 address all the same: then it is read again with IPv6, so DEL and CHECK find it.
 */
function podTarget(inv: Invocation, config: PluginConfig, desired: (o: Observed) => NetState): Target {
  const { netns, ifname } = inv.env;
  const device = names(ifname).device;
  const ipv6 = mayHoldIpv6(config.prevResult);
  // What ADD and DEL change goes to the observation's own ip processes; CHECK changes nothing.
  const keep = inv.env.command !== "CHECK";
  const observe = async (): Promise<Observed> => {
    const pending = inv.early?.pod() ?? startObserve(netns, EVERY_TABLE, { ipv6, keep });
    const o = await pending.read();
    if (pending.ipv6 || !o.state.addresses.some((a) => a.dev === device && familyOf(a.local) === 6)) return o;
    endKept(o.kept);
    return startObserve(netns, EVERY_TABLE, { ipv6: true, keep }).read();
  };
  return { netns, where: "", scope: (o) => podScope(ifname, ownSlots(config, o, ifname)), observe, desired };
}

/** The node's own namespace: the attachment's enforcement chain, and (to find a pod's host port) its veths. */
function nodeTarget(chain: string, desired: Target["desired"], withVeths: boolean, early?: EarlyReads): Target {
  const scope = enforcementScope(new Set([chain]));
  const observeNode = async (): Promise<Observed> => {
    const { nft, veths } = early?.node(chain, withVeths) ?? startNodeReads(ENFORCE_TABLE, chain, withVeths);
    const [nftChains, interfaces] = await Promise.all([nft.read(), veths?.read() ?? []]);
    return { state: stateOf({ nftChains }), interfaces };
  };
  return { netns: undefined, where: "on the node: ", scope: () => scope, observe: observeNode, desired };
}

/**
 * Every target's observation. A missing or failing observing tool (iptables-save, ip6tables-save,
 * ip) is reported like one that fails while applying, not as an internal error.
 */
async function observeAll(verb: string, targets: Target[]): Promise<Observed[]> {
  try {
    return await Promise.all(targets.map((t) => t.observe()));
  } catch (e) {
    throw applyError(verb, e);
  }
}

const podObservation = (targets: Target[], observed: Observed[]) =>
  observed[targets.findIndex((t) => t.netns !== undefined)];

/** Reconciles every target; if any fails, each is reconciled back to what it held before. */
async function reconcile(verb: string, targets: Target[]): Promise<void> {
  const before = await observeAll(verb, targets);
  trace(`${verb}: observed`);
  const scopes = targets.map((t, i) => t.scope(before[i]!));
  try {
    const pod = podObservation(targets, before);
    const changes = targets.map((t, i) => diff(t.desired(before[i]!, pod), before[i]!.state, scopes[i]!));
    trace(`${verb}: planned ${changes.reduce((n, c) => n + c.length, 0)} changes`);
    await Promise.all(targets.map((t, i) => apply(t.netns, changes[i]!, before[i]!.kept)));
    trace(`${verb}: applied`);
  } catch (e) {
    await Promise.all(targets.map((t, i) => rollback(t, within(before[i]!.state, scopes[i]!), scopes[i]!)));
    throw applyError(verb, e);
  }
}

/** Reconciles back to `target` after a failed ADD; logs (never throws) so the ADD's own error is what the runtime sees. */
async function rollback(t: Target, target: NetState, scope: Scope): Promise<void> {
  try {
    const now = await t.observe();
    await apply(t.netns, diff(target, now.state, scope), now.kept);
  } catch (e) {
    log(`rolling back a failed ADD: ${(e as Error).message}`);
  }
}

/** The pod's overlay addresses: IPv4, and IPv6 when the pod has IPv6. */
export interface OverlayAddresses {
  ip: string;
  ip6?: string;
}

/** The overlay addresses that need no allocator: pinned, else derived (of each family the pod has). */
function overlayWithoutIpam(a: Attachment, pod: PodAddresses, family: 4 | 6): string {
  if (family === 4)
    return a.overlayIP !== undefined
      ? checkOverlayAddress(a.overlayIP, a, "EGRESS_OVERLAY_IP")
      : deriveOverlayAddress(pod.ipv4.ip, a);
  return a.overlayIP6 !== undefined
    ? checkOverlayAddress(a.overlayIP6, a, "EGRESS_OVERLAY_IP6", ErrorCode.InvalidEnvironment, 6)
    : deriveOverlayAddress(pod.ipv6!.ip, a, 6);
}

/**
 * The overlay addresses for ADD (allocating through IPAM if configured: one IPAM call gives
 * both families, as host-local does with one range per family) and whether ADD allocated them.
 * A pinned address of a family wins over IPAM's.
 */
async function overlayForAdd(
  inv: Invocation,
  config: PluginConfig,
  a: Attachment,
  pod: PodAddresses,
): Promise<OverlayAddresses & { allocated: boolean }> {
  const dual = pod.ipv6 !== undefined;
  if (!config.ipam || (a.overlayIP !== undefined && (!dual || a.overlayIP6 !== undefined))) {
    const ip = overlayWithoutIpam(a, pod, 4);
    return { ip, ...(dual ? { ip6: overlayWithoutIpam(a, pod, 6) } : {}), allocated: false };
  }
  const result = (await delegate("ADD", config.ipam.type, inv.stdin, inv.processEnv, inv.env.path)) as {
    ips?: Array<{ address?: string }>;
  };
  const origin = `IPAM plugin ${config.ipam.type}`;
  const of = (family: 4 | 6) =>
    (result.ips ?? []).map((x) => x.address?.split("/")[0] ?? "").find((x) => familyOf(x) === family);
  try {
    const ip =
      a.overlayIP !== undefined
        ? overlayWithoutIpam(a, pod, 4)
        : checkOverlayAddress(of(4) ?? "", a, origin, ErrorCode.InvalidConfig);
    if (!dual) return { ip, allocated: true };
    if (a.overlayIP6 !== undefined) return { ip, ip6: overlayWithoutIpam(a, pod, 6), allocated: true };
    const ip6 = of(6);
    if (ip6 === undefined)
      throw new CniError(
        ErrorCode.InvalidConfig,
        `${origin} returned no IPv6 address for the dual-stack pod (${pod.ipv6!.ip}): give the ipam block an IPv6 range inside overlaySubnet6, or pin one with EGRESS_OVERLAY_IP6`,
      );
    return { ip, ip6: checkOverlayAddress(ip6, a, origin, ErrorCode.InvalidConfig, 6), allocated: true };
  } catch (e) {
    await releaseIpam(inv, config);
    throw e;
  }
}

async function releaseIpam(inv: Invocation, config: PluginConfig): Promise<void> {
  if (config.ipam) await delegate("DEL", config.ipam.type, inv.stdin, inv.processEnv, inv.env.path);
}

function underlayMtu(observed: Observed, ifname: string, podIP: string): number {
  const link = observed.interfaces.find((l) => l.name === ifname);
  if (!link)
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `interface ${ifname} does not exist in the container's network namespace`,
    );
  if (!observed.state.addresses.some((x) => x.dev === ifname && x.local === podIP)) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `interface ${ifname} does not hold ${podIP}, the address prevResult gives it`,
    );
  }
  return link.mtu;
}

/**
 * The targets of an attached pod: its namespace, and the node when enforcing. The overlay
 * address is known (ADD, or CHECK of a derived/pinned one) or read from what is observed
 * (CHECK with IPAM, which allocated it at ADD).
 */
function attachedTargets(
  inv: Invocation,
  config: PluginConfig,
  a: Attachment,
  podIP: string,
  overlayIPs: OverlayAddresses | ((o: Observed) => OverlayAddresses),
): Target[] {
  const { ifname, containerId } = inv.env;
  const overlay = typeof overlayIPs === "function" ? overlayIPs : () => overlayIPs;
  const targets = [
    podTarget(inv, config, (o) => {
      const { ip, ip6 } = overlay(o);
      return planPod(config, a, {
        ifname,
        podIP,
        overlayIP: ip,
        underlayMtu: underlayMtu(o, ifname, podIP),
        defaultRoute: holdsDefault(o.state.routes, ifname),
        slot: chooseSlot(config, o.state, ifname),
        allRpFilter: o.state.sysctls.find((s) => s.dev === "all" && s.name === "rp_filter")?.value,
        ...(ip6 ? { overlayIP6: ip6, defaultRoute6: holdsDefault(o.state.routes6, ifname) } : {}),
      });
    }),
  ];
  if (config.enforce) {
    const network = config.name ?? "";
    const identity = podIdentity(config.prevResult, ifname);
    const enforced = (node: Observed, pod: Observed | undefined) => {
      const links = pod?.interfaces ?? [];
      const mac = identity.mac ?? links.find((l) => l.name === ifname)?.mac ?? "";
      return planEnforcement(config, a, {
        network,
        containerId,
        ifname,
        identity: { ...identity, mac },
        hostDevice: hostSide(links, node.interfaces, ifname),
      });
    };
    targets.push(nodeTarget(enforceNames(network, containerId, ifname).chain, enforced, true, inv.early));
  }
  return targets;
}

export async function cmdAdd(inv: Invocation): Promise<unknown> {
  const config = parseConfig(inv.conf);
  const pod = podAddresses(config.prevResult, inv.env.ifname);
  const a = selectGateway(config, inv.env.args);
  if (!a) return config.prevResult;
  await requireNetns(inv.env.netns);
  if (a.gateway === pod.ipv4.ip)
    throw new CniError(ErrorCode.InvalidConfig, `the gateway ${a.gateway} (from ${a.source}) is the pod's own address`);
  const overlay = await overlayForAdd(inv, config, a, pod);
  try {
    await reconcile("ADD", attachedTargets(inv, config, a, pod.ipv4.ip, overlay));
  } catch (e) {
    if (overlay.allocated)
      await releaseIpam(inv, config).catch((r: Error) =>
        log(`releasing the overlay address after a failed ADD: ${r.message}`),
      );
    throw e;
  }
  return config.prevResult;
}

export async function cmdDel(inv: Invocation): Promise<void> {
  const config = parseConfig(inv.conf);
  const { ifname, netns, containerId } = inv.env;
  let status: "present" | "absent" = "absent";
  if (netns !== "") {
    try {
      status = await checkNetns(netns);
    } catch (e) {
      throw new CniError(ErrorCode.InvalidEnvironment, (e as Error).message);
    }
  }
  // The node's enforcement goes whatever the config says now: it may have said enforce at ADD.
  const node = nodeTarget(
    enforceNames(config.name ?? "", containerId, ifname).chain,
    () => emptyState(),
    false,
    inv.early,
  );
  try {
    await reconcile("DEL", status === "present" ? [node, podTarget(inv, config, () => emptyState())] : [node]);
  } catch (e) {
    // The namespace may vanish between the check and the commands: then there is nothing left to remove in it.
    if (status === "absent" || (await checkNetns(netns).catch(() => "absent")) === "present") throw e;
    await reconcile("DEL", [node]);
  }
  await releaseIpam(inv, config);
}

export async function cmdCheck(inv: Invocation): Promise<void> {
  const config = parseConfig(inv.conf);
  const { ifname, netns } = inv.env;
  const pod = podAddresses(config.prevResult, ifname);
  const a = selectGateway(config, inv.env.args);
  await requireNetns(netns);
  let targets: Target[] = [podTarget(inv, config, () => emptyState())];
  if (a) {
    const dual = pod.ipv6 !== undefined;
    const device = names(ifname).device;
    // With IPAM, what ADD allocated is read back from the tunnel; a pin or a derivation is recomputed.
    const found = (o: Observed, family: 4 | 6, pinned: boolean) => {
      if (!config.ipam || pinned) return overlayWithoutIpam(a, pod, family);
      const ip = o.state.addresses.find((x) => x.dev === device && familyOf(x.local) === family)?.local;
      if (!ip)
        throw new CniError(
          ErrorCode.AttachmentMismatch,
          `CHECK: the overlay IPv${family} address on ${device} is missing`,
        );
      return ip;
    };
    if (config.ipam) await delegate("CHECK", config.ipam.type, inv.stdin, inv.processEnv, inv.env.path);
    targets = attachedTargets(inv, config, a, pod.ipv4.ip, (o) => ({
      ip: found(o, 4, a.overlayIP !== undefined),
      ...(dual ? { ip6: found(o, 6, a.overlayIP6 !== undefined) } : {}),
    }));
  }
  const observed = await observeAll("CHECK", targets);
  const inPod = podObservation(targets, observed);
  const wrong = targets.flatMap((t, i) =>
    problems(diff(t.desired(observed[i]!, inPod), observed[i]!.state, t.scope(observed[i]!))).map(
      (p) => `${t.where}${p}`,
    ),
  );
  if (wrong.length) {
    throw new CniError(
      ErrorCode.AttachmentMismatch,
      `CHECK: ${wrong.join("; ")}`,
      a ? `gateway ${a.gateway} from ${a.source}` : "no gateway selected for this pod",
    );
  }
}

export async function cmdGc(inv: Invocation): Promise<void> {
  const config = parseConfig(inv.conf);
  const valid = config["cni.dev/valid-attachments"] ?? config["cni.dev/attachments"];
  // Inside pods everything dies with the namespace; on the node, enforcement chains outlive
  // pods whose DEL never ran. Without a list of valid attachments nothing can be judged stale.
  if (valid) {
    const observed = stateOf({ nftChains: await observeNftTable(undefined, "netdev", ENFORCE_TABLE) });
    const stale = staleEnforcement(observed, config.name ?? "", valid);
    if (stale.size) await apply(undefined, diff(emptyState(), observed, enforcementScope(stale)));
  }
  if (config.ipam) await delegate("GC", config.ipam.type, inv.stdin, inv.processEnv, inv.env.path);
}

/** The tools every verb needs. STATUS runs every few seconds: it only looks at PATH, it runs nothing. */
export const REQUIRED_TOOLS = [
  "ip",
  "iptables-restore",
  "iptables-save",
  "ip6tables-restore",
  "ip6tables-save",
  "nsenter",
  "sysctl",
];
/** And with `enforce`: the node's rules are nftables. */
export const ENFORCE_TOOLS = ["nft"];

export async function cmdStatus(inv: Invocation, findTool: (name: string) => Promise<boolean>): Promise<void> {
  const config = parseConfig(inv.conf);
  const missing: string[] = [];
  for (const tool of [...REQUIRED_TOOLS, ...(config.enforce ? ENFORCE_TOOLS : [])])
    if (!(await findTool(tool))) missing.push(tool);
  if (missing.length) {
    throw new CniError(
      ErrorCode.PluginNotAvailable,
      `required tools not found in PATH: ${missing.join(", ")}`,
      `install iproute2, iptables, util-linux and procps${config.enforce ? ", and nftables for enforce" : ""}`,
    );
  }
  if (config.ipam) await delegate("STATUS", config.ipam.type, inv.stdin, inv.processEnv, inv.env.path);
}
