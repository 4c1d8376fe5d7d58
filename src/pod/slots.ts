/**
 * Which routing table, rule priority and fwmark an attachment uses inside its pod. A pod may hold
 * several tenant-egress attachments (Multus: eth0 on one network, net1 on another, perhaps other
 * tenants and gateways), and each needs its own: attachment k of a pod gets `routeTable + k`,
 * `rulePriority + k` and mark value `value + k` under the configured mask, k being the lowest
 * slot no other attachment of the pod holds, within `attachmentSlots` (a clear error when all
 * are taken or the mask has no room).
 *
 * What an attachment got is recorded in the kernel, on its own tunnel device's alias, so DEL
 * and CHECK find exactly its objects whatever the configuration says now (a changed routeTable
 * or mark), and ADD knows which slots the pod's other attachments hold. Without the device (a
 * privileged pod may delete it) the mark its chain sets, and the rule for that mark, say the same.
 */
import { CniError, ErrorCode } from "../cni/errors.js";
import type { NetState } from "../net/desired-state.js";
import type { PluginConfig } from "./config.js";
import { names } from "./names.js";

export interface Slot {
  table: number;
  priority: number;
  /** "0xb/0xff", in the form `ip rule` and iptables-save print. */
  mark: string;
}

const ALIAS = /^tenant-egress:slot:(\d+):(\d+):(0x[0-9a-f]+\/0x[0-9a-f]+)$/;

/**
 * The alias of an attachment's tunnel device: its slot. The device's name already says whose it
 * is inside the pod (CNI_IFNAME is unique in a namespace, and the container ID is the pod's).
 */
export const slotAlias = (s: Slot) => `tenant-egress:slot:${s.table}:${s.priority}:${s.mark}`;

function parseAlias(alias: string | undefined): Slot | undefined {
  const m = ALIAS.exec(alias ?? "");
  return m ? { table: Number(m[1]), priority: Number(m[2]), mark: m[3]! } : undefined;
}

const sameSlot = (a: Slot, b: Slot) => a.table === b.table && a.priority === b.priority && a.mark === b.mark;

/** The slot recorded for the attachment on `ifname`: on its device, else by the mark its chain sets. */
export function recordedSlot(state: NetState, ifname: string): Slot | undefined {
  const n = names(ifname);
  const onDevice = parseAlias(state.links.find((l) => l.name === n.device)?.alias);
  if (onDevice) return onDevice;
  const chain = state.chains.find((c) => c.table === "mangle" && c.name === n.markChain);
  const mark = chain?.rules.map((r) => /-j MARK --set-xmark (\S+)$/.exec(r)?.[1]).find((m) => m !== undefined);
  const rule = mark ? state.rules.find((r) => r.fwmark === mark) : undefined;
  return rule && mark ? { table: rule.table, priority: rule.priority, mark } : undefined;
}

/** Slots held by the pod's other tenant-egress attachments. */
function othersSlots(state: NetState, ifname: string): Slot[] {
  const mine = names(ifname).device;
  return state.links.flatMap((l) => {
    const s = l.name === mine ? undefined : parseAlias(l.alias);
    return s ? [s] : [];
  });
}

/** Slot k of the configured ranges, or why there is none. */
function slotAt(config: PluginConfig, k: number): Slot | string {
  const [value, mask] = config.mark.split("/").map(Number) as [number, number];
  const mark = value + k;
  if (mark > 0xffffffff || (mark & ~mask) >>> 0 !== 0) return `mark ${config.mark} has no value left under its mask`;
  const table = config.routeTable + k;
  if (table > 0xffffffff || (table >= 253 && table <= 255)) return `routing table ${table} is not available`;
  const priority = config.rulePriority + k;
  if (priority > 32765) return `rule priority ${priority} is past 32765`;
  return { table, priority, mark: `0x${mark.toString(16)}/0x${mask.toString(16)}` };
}

/**
 * The slot the attachment on `ifname` should hold: the one it holds if that is still one of the
 * configured slots and no other attachment shares any part of it, else the lowest free one.
 */
export function chooseSlot(config: PluginConfig, state: NetState, ifname: string): Slot {
  const taken = othersSlots(state, ifname);
  const free = (s: Slot) => !taken.some((t) => t.table === s.table || t.priority === s.priority || t.mark === s.mark);
  const held = recordedSlot(state, ifname);
  let lowest: Slot | undefined;
  let why = `the pod's other tenant-egress attachments hold all ${config.attachmentSlots} (attachmentSlots)`;
  for (let k = 0; k < config.attachmentSlots; k++) {
    const s = slotAt(config, k);
    if (typeof s === "string") {
      why = `attachment ${k + 1}: ${s}`;
      break;
    }
    if (!free(s)) continue;
    if (held && sameSlot(s, held)) return s;
    lowest ??= s;
  }
  if (lowest) return lowest;
  throw new CniError(ErrorCode.InvalidConfig, `no routing table, rule priority and mark left for ${ifname}: ${why}`);
}
