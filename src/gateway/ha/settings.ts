/**
 * The `ha` block of the gateway's configuration: one block, identical in the file both instances
 * mount, that describes the pair — the shared underlay address pods' VXLAN points at, both
 * instances (underlay address, sync-link address, priority), the dedicated sync link, the VRRP
 * router id and advertisement interval. Nothing in it is per instance on purpose: each daemon
 * finds itself in `instances` by the address its uplink carries, so one ConfigMap serves both and
 * the two cannot be configured apart. Parsed here, checked against the tenants by the gateway's
 * configuration parser (each tenant's egress address must be explicit, see `requireEgressAddresses`).
 */
import * as z from "zod/mini";
import { cidrContains, parseCidr, parseIP } from "../../net/ip.js";
import { intIn, port, unicastIPv4 } from "../../net/schema.js";

const ifname = z.string().check(z.regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/, { error: "not an interface name" }));
const hostCidr = z.string().check(
  z.refine((s) => /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(s) && parseIP(s.split("/")[0]!, 4) !== undefined, {
    error: (i) => `"${String(i.input)}" is not an address with its prefix (like 10.23.0.100/24)`,
  }),
);
/** VRRPv3 counts in centiseconds up to 40.95 s. */
const interval = z.string().check(
  z.refine((s) => advertCentiseconds(s) !== undefined, {
    error: (i) => `"${String(i.input)}" is not an advertisement interval of 10ms-40950ms in 10 ms steps (like "100ms")`,
  }),
);

const Instance = z.strictObject({
  name: z
    .string()
    .check(z.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$/, { error: "1-31 letters, digits, '_', '.', '-'" })),
  /** Its own underlay address (on the uplink): where VRRP advertisements come from. */
  address: unicastIPv4,
  /** Its address on the sync link: where conntrackd and the learned-pod exchange talk. */
  syncAddress: unicastIPv4,
  priority: z._default(intIn(1, 254, "a VRRP priority is 1-254"), 100),
});

export const HaSchema = z.strictObject({
  /** The shared underlay address (with prefix) that pods' tunnels point at. */
  vip: hostCidr,
  virtualRouterId: z._default(intIn(1, 255, "a VRRP router id is 1-255"), 51),
  advertInterval: z._default(interval, "100ms"),
  /** A recovered instance takes the role back only if asked to (it interrupts every flow once more). */
  preempt: z._default(z.boolean(), false),
  syncInterface: ifname,
  syncPort: z._default(port, 3780),
  instances: z
    .array(Instance)
    .check(z.length(2, { error: "list exactly two instances: this pair's active and standby" })),
});

export interface HaInstance {
  name: string;
  address: string;
  syncAddress: string;
  priority: number;
}

export interface HaSettings {
  vip: string;
  vipPrefix: number;
  virtualRouterId: number;
  advertCentiseconds: number;
  preempt: boolean;
  syncInterface: string;
  /** conntrackd's port; the learned-pod exchange uses the next one. */
  syncPort: number;
  instances: [HaInstance, HaInstance];
}

export class HaSettingsError extends Error {}

export function advertCentiseconds(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * (m[2] === "s" ? 1000 : 1);
  const cs = ms / 10;
  return Number.isInteger(cs) && cs >= 1 && cs <= 4095 ? cs : undefined;
}

export function resolveHa(raw: z.infer<typeof HaSchema>): HaSettings {
  const [vip, prefixText] = raw.vip.split("/") as [string, string];
  const prefix = Number(prefixText);
  if (prefix < 8 || prefix > 32) throw new HaSettingsError(`ha.vip: prefix /${prefix} must be /8 to /32`);
  const [a, b] = raw.instances as [HaInstance, HaInstance];
  if (a.name === b.name) throw new HaSettingsError(`ha.instances: both are named "${a.name}"`);
  for (const key of ["address", "syncAddress"] as const)
    if (a[key] === b[key]) throw new HaSettingsError(`ha.instances[1].${key}: ${b[key]} is instances[0]'s too`);
  for (const [i, inst] of raw.instances.entries())
    if (inst.address === vip || inst.syncAddress === vip)
      throw new HaSettingsError(`ha.instances[${i}]: ${vip} is the shared address; each instance needs its own`);
  const subnet = parseCidr(raw.vip, false)!;
  for (const [i, inst] of raw.instances.entries())
    if (!cidrContains(subnet, inst.address))
      throw new HaSettingsError(
        `ha.instances[${i}].address: ${inst.address} is outside ${raw.vip}: the shared address must be on the instances' own segment, or a takeover's ARP announcement reaches no one`,
      );
  return {
    vip,
    vipPrefix: prefix,
    virtualRouterId: raw.virtualRouterId,
    advertCentiseconds: advertCentiseconds(raw.advertInterval)!,
    preempt: raw.preempt,
    syncInterface: raw.syncInterface,
    syncPort: raw.syncPort,
    instances: [a, b],
  };
}

/**
 * MASQUERADE picks the address the uplink has at the moment a flow starts; in a pair that moves
 * addresses, that is whichever address happens to be there, and a taken-over flow's NAT binding
 * names an address the new active may not have. So in HA mode each tenant names its egress.
 */
export function requireEgressAddresses(tenants: ReadonlyArray<{ snat: string }>): void {
  tenants.forEach((t, i) => {
    if (t.snat === "masquerade")
      throw new HaSettingsError(
        `tenants[${i}].snat: in HA mode each tenant needs an egress address (like "198.51.100.1"), not "masquerade": the address moves with the active instance and taken-over connections keep their NAT binding to it`,
      );
  });
}

/** Which instance this is, by the addresses its uplink carries; the other is its peer. */
export function whoAmI(ha: HaSettings, uplinkAddresses: readonly string[]): { self: HaInstance; peer: HaInstance } {
  const mine = ha.instances.filter((i) => uplinkAddresses.includes(i.address));
  if (mine.length !== 1)
    throw new HaSettingsError(
      mine.length
        ? "the uplink carries the addresses of both HA instances"
        : `none of ha.instances' addresses (${ha.instances.map((i) => i.address).join(", ")}) is on the uplink (it has ${uplinkAddresses.join(", ") || "none"})`,
    );
  const self = mine[0]!;
  return { self, peer: ha.instances.find((i) => i !== self)! };
}
