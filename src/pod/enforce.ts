/**
 * Enforcement on the node: a tenant pod with CAP_NET_ADMIN (docker-in-docker runners are often
 * privileged) can flush its own mangle and nat rules and delete the ip rule; its public traffic
 * would then leave unshaped through eth0. These rules live outside its reach, in the node's
 * namespace (where the plugin runs), on the FORWARD path of the pod's own address:
 *   - VXLAN to its own gateway with its own VNI passes;
 *   - any other VXLAN is dropped (no borrowing another tenant's VNI or gateway);
 *   - private destinations (the same exclusions as inside the pod) pass;
 *   - everything else is dropped: public traffic must go through the tunnel.
 * One chain per attachment, named from the container ID and interface, with the owner in the
 * jump's comment so GC can find chains whose pod is gone.
 */
import type { Jump, NetState, Scope } from "../net/desired-state.js";
import { EMPTY_STATE } from "../net/desired-state.js";
import { vniMatch } from "../net/vxlan.js";
import type { PluginConfig } from "./config.js";
import { exclusions } from "./config.js";
import { ENFORCE_PREFIX, enforceNames } from "./names.js";
import type { Attachment } from "./select-gateway.js";

export function planEnforcement(config: PluginConfig, a: Attachment, at: { containerId: string; ifname: string; podIP: string }): NetState {
  const n = enforceNames(at.containerId, at.ifname);
  const vxlan = `-p udp -m udp --dport ${a.port}`;
  const rules = [
    `-d ${a.gateway}/32 ${vxlan} ${vniMatch(a.vni)} -j RETURN`,
    `${vxlan} -j DROP`,
    ...exclusions(config).map((c) => `-d ${c} -j RETURN`),
    "-j DROP",
  ];
  const jump: Jump = { table: "filter", hook: "FORWARD", match: `-s ${at.podIP}/32 -m comment --comment "${n.comment}"`, chain: n.chain, first: true };
  return { ...EMPTY_STATE, chains: [{ table: "filter", name: n.chain, rules }], jumps: [jump] };
}

/** Only the given enforcement chains (and the jumps into them). */
export function enforcementScope(chains: ReadonlySet<string>): Scope {
  return {
    link: () => false,
    rule: () => false,
    routeTable: () => false,
    chain: (table, name) => table === "filter" && chains.has(name),
    tcRoot: () => false,
    tcClass: () => false,
  };
}

/** Enforcement chains on the node whose attachment is not in `valid` (GC's "stale"). */
export function staleEnforcement(observed: NetState, valid: ReadonlyArray<{ containerID: string; ifname: string }>): Set<string> {
  const keep = new Set(valid.map((v) => `tenant-egress:${v.containerID}/${v.ifname}`));
  const stale = new Set<string>();
  for (const c of observed.chains) if (c.table === "filter" && c.name.startsWith(ENFORCE_PREFIX)) stale.add(c.name);
  for (const j of observed.jumps) {
    const owner = /--comment "([^"]+)"/.exec(j.match)?.[1];
    if (owner && keep.has(owner)) stale.delete(j.chain);
  }
  return stale;
}
