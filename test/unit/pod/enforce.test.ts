import { describe, expect, it } from "vitest";
import { parseIptablesSave } from "../../../src/net/observe.js";
import { EMPTY_STATE } from "../../../src/net/desired-state.js";
import { parseConfig } from "../../../src/pod/config.js";
import { planEnforcement, staleEnforcement } from "../../../src/pod/enforce.js";
import { enforceNames } from "../../../src/pod/names.js";
import { selectGateway } from "../../../src/pod/select-gateway.js";

const config = parseConfig({ cniVersion: "1.0.0", type: "tenant-egress", gateway: "10.23.0.2", vni: 300, enforce: true, excludeCIDRs: ["198.18.0.0/15"] });
const a = selectGateway(config, new Map())!;

describe("planEnforcement", () => {
  const s = planEnforcement(config, a, { containerId: "abc", ifname: "eth0", podIP: "10.22.0.5" });
  const n = enforceNames("abc", "eth0");

  it("lets only the pod's own tunnel and private traffic through, in that order", () => {
    const rules = s.chains[0]!.rules;
    expect(rules[0]).toBe('-d 10.23.0.2/32 -p udp -m udp --dport 4789 -m u32 --u32 "0x0>>0x16&0x3c@0xc>>0x8=0x12c" -j RETURN');
    expect(rules[1]).toBe("-p udp -m udp --dport 4789 -j DROP");
    expect(rules).toContain("-d 169.254.0.0/16 -j RETURN");
    expect(rules).toContain("-d 198.18.0.0/15 -j RETURN");
    expect(rules.at(-1)).toBe("-j DROP");
  });

  it("hooks the pod's address into FORWARD first, naming its owner", () => {
    expect(s.jumps).toEqual([{ table: "filter", hook: "FORWARD", match: '-s 10.22.0.5/32 -m comment --comment "tenant-egress:abc/eth0"', chain: n.chain, first: true }]);
    expect(n.chain.length).toBeLessThanOrEqual(28);
    expect(enforceNames("abc", "net1").chain).not.toBe(n.chain);
  });
});

describe("staleEnforcement", () => {
  const save = (owners: string[]) =>
    ["*filter", ...owners.map((o, i) => `:TE-ENF-${i} - [0:0]`), ...owners.map((o, i) => `-A FORWARD -s 10.22.0.${i}/32 -m comment --comment "tenant-egress:${o}" -j TE-ENF-${i}`), ":TE-ENF-orphan - [0:0]", "COMMIT"].join("\n");

  it("keeps chains of valid attachments and names the rest, orphans included", () => {
    const observed = { ...EMPTY_STATE, ...parseIptablesSave(save(["a/eth0", "b/eth0", "a/net1"])) };
    expect([...staleEnforcement(observed, [{ containerID: "a", ifname: "eth0" }])].sort()).toEqual(["TE-ENF-1", "TE-ENF-2", "TE-ENF-orphan"]);
  });
});
