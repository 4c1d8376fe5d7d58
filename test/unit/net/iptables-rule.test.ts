import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { diff, type NetState, problems, type Scope, stateOf } from "../../../src/net/desired-state.js";
import { canonicalRule, rulesDifference } from "../../../src/net/iptables-rule.js";
import { parseIptablesSave } from "../../../src/net/observe.js";

// The same rules, restored into a lab namespace and saved back by iptables-nft-save and
// iptables-legacy-save 1.8.9, and hand-written as another version or backend might print them.
const fixture = (name: string) => readFileSync(new URL(`fixtures/${name}`, import.meta.url), "utf8");
const FIXTURES = ["iptables-save-1.8.9-nft.txt", "iptables-save-1.8.9-legacy.txt", "iptables-save-other-form.txt"];

const clamp = "-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400";

/** The rules as the pod and gateway plans write them. */
const desired: NetState = stateOf({
  chains: [
    {
      table: "mangle",
      name: "TE-MARK-eth0",
      rules: [
        "-m mark ! --mark 0x0/0xff -j RETURN",
        "-d 10.0.0.0/8 -j RETURN",
        "-d 172.16.0.1/32 -j RETURN",
        "-j MARK --set-xmark 0xa/0xff",
      ],
    },
    { table: "mangle", name: "TE-MSS-eth0", rules: [`-o te-eth0 ${clamp}`, `-i te-eth0 ${clamp}`] },
    {
      table: "mangle",
      name: "TEG-TUN",
      rules: ["-o eth0 -p udp -m udp --dport 4789 -j CLASSIFY --set-class 007e:0002"],
    },
    { table: "mangle", name: "TEG-CLS-300", rules: ["-i tev300 -o eth0 -j CLASSIFY --set-class 007e:0010"] },
    { table: "nat", name: "TE-SNAT-eth0", rules: ["-o te-eth0 -j SNAT --to-source 172.16.0.2"] },
    { table: "nat", name: "TEG-SNAT-300", rules: ["-s 172.16.0.0/24 -o eth0 -j MASQUERADE"] },
    { table: "nat", name: "TEG-SNAT-301", rules: ["-s 172.17.0.0/24 -o eth0 -j SNAT --to-source 192.0.2.10"] },
    { table: "filter", name: "TEG-CT", rules: ["-i eth0 -m conntrack --ctstate INVALID -j DROP"] },
    // A source as a tenants file may give it: iptables prints the host as /32.
    { table: "filter", name: "TEG-IN-300", rules: ["-s 10.1.0.5 -j RETURN", "-s 10.1.0.0/24 -j RETURN", "-j DROP"] },
    {
      table: "filter",
      name: "TEG-FWD-300",
      rules: [
        "! -s 172.16.0.0/24 -i tev300 -j DROP",
        "-i tev300 ! -o eth0 -j DROP",
        "-i tev300 -j ACCEPT",
        "-o tev300 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
      ],
    },
  ],
  jumps: [
    { table: "mangle", hook: "OUTPUT", match: "-o eth0", chain: "TE-MARK-eth0", first: true },
    { table: "mangle", hook: "PREROUTING", match: "", chain: "TE-MARK-eth0", first: true },
    { table: "mangle", hook: "PREROUTING", match: "", chain: "TE-MSS-eth0", first: false },
    { table: "mangle", hook: "POSTROUTING", match: "", chain: "TE-MSS-eth0", first: false },
    { table: "mangle", hook: "OUTPUT", match: "", chain: "TEG-TUN", first: false },
    { table: "mangle", hook: "FORWARD", match: "", chain: "TEG-CLS-300", first: false },
    { table: "nat", hook: "POSTROUTING", match: "", chain: "TE-SNAT-eth0", first: true },
    { table: "nat", hook: "POSTROUTING", match: "", chain: "TEG-SNAT-300", first: false },
    { table: "filter", hook: "INPUT", match: "", chain: "TEG-CT", first: true },
    {
      table: "filter",
      hook: "INPUT",
      match: '-p udp -m udp --dport 4789 -m u32 --u32 "0x0>>0x16&0x3c@0xc>>0x8=0x12c"',
      chain: "TEG-IN-300",
      first: true,
    },
    { table: "filter", hook: "FORWARD", match: "", chain: "TEG-FWD-300", first: true },
  ],
});

const scope: Scope = { chain: (_t, n) => n.startsWith("TE-") || n.startsWith("TEG-") };

const observed = (text: string) => stateOf(parseIptablesSave(text));

describe("iptables rules compared by meaning", () => {
  it.each(FIXTURES)("finds nothing to change against %s", (name) => {
    const o = observed(fixture(name));
    expect(o.chains).toHaveLength(desired.chains.length);
    expect(o.jumps).toHaveLength(desired.jumps.length);
    expect(diff(desired, o, scope)).toEqual([]);
  });

  it("sees one changed value in a saved chain, and names the chain, the rule and both forms", () => {
    const text = fixture("iptables-save-1.8.9-legacy.txt").replace(
      "-A TE-MSS-eth0 -i te-eth0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400",
      "-A TE-MSS-eth0 -i te-eth0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1401",
    );
    const changes = diff(desired, observed(text), scope);
    expect(changes.map((c) => `${c.kind} ${c.op}`)).toEqual(["chains replace"]);
    expect(problems(changes)).toEqual([
      `iptables chain TE-MSS-eth0 (mangle) rule 2 is "-i te-eth0 ${clamp.replace("1400", "1401")}", want "-i te-eth0 ${clamp}"`,
    ]);
  });

  it("keys a jump by meaning: a jump whose VNI differs is another jump", () => {
    const text = fixture("iptables-save-other-form.txt").replace("=300 -m udp", "=301 -m udp");
    const changes = diff(desired, observed(text), scope);
    expect(changes.map((c) => `${c.kind} ${c.op} ${c.kind === "jumps" ? c.object.match : ""}`)).toEqual([
      'jumps add -p udp -m udp --dport 4789 -m u32 --u32 "0x0>>0x16&0x3c@0xc>>0x8=0x12c"',
      "jumps delete -p 17 -m u32 --u32 0>>22&0x3C@12>>8=301 -m udp --dport 4789",
    ]);
  });

  it.each([
    ["-p 6 -m tcp --dport 80 -j ACCEPT", "-p tcp -m tcp --dport 80 -j ACCEPT"],
    ["-p tcp --dport 80 -j ACCEPT", "-p tcp -m tcp --dport 0x50 -j ACCEPT"],
    ["-p tcp -m tcp -j ACCEPT", "-p tcp -j ACCEPT"],
    ["-p all -j ACCEPT", "-j ACCEPT"],
    ["-m mark --mark 0x1/0x1 -j RETURN", "-m mark --mark 1/1 -j RETURN"],
    ["-m mark --mark 0x1 -j RETURN", "-m mark --mark 0x1/0xffffffff -j RETURN"],
    ["-j MARK --set-mark 0xa", "-j MARK --set-xmark 0xa/0xffffffff"],
    ["-d 10.1.2.3 -j RETURN", "-d 10.1.2.3/32 -j RETURN"],
    ["-d 10.1.2.3/8 -j RETURN", "-d 10.0.0.0/255.0.0.0 -j RETURN"],
    ["--source 10.0.0.0/8 --jump RETURN", "-s 10.0.0.0/8 -j RETURN"],
    // ip6tables prints RFC 5952 and a host as /128.
    ["-d 2001:db8::1 -j RETURN", "-d 2001:0db8:0:0::1/128 -j RETURN"],
    ["-s FD00::/8 -j RETURN", "-s fd00::/8 -j RETURN"],
    ["-d 2001:db8::5/32 -j RETURN", "-d 2001:db8::/32 -j RETURN"],
    [
      "-m conntrack --ctstate INVALID -m mark --mark 0x2/0x2 -j DROP",
      "-m mark --mark 0x2/0x2 -m conntrack --ctstate INVALID -j DROP",
    ],
    [
      '-m comment --comment "owned by tenant-egress" -j RETURN',
      "-m comment --comment 'owned by tenant-egress' -j RETURN",
    ],
    ["-p tcp -m tcp --tcp-flags ALL NONE -j DROP", "-p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j DROP"],
    ['-m u32 --u32 "0x0>>0x16&0x3c@0xc>>0x8=0x12c" -j ACCEPT', "-m u32 --u32 0x0>>0x16&0x3C@0xc>>0x8=0x12C -j ACCEPT"],
    ["-j CLASSIFY --set-class 007e:0002", "-j CLASSIFY --set-class 7e:2"],
  ])("%s ≡ %s", (a, b) => {
    expect(canonicalRule(a)).toBe(canonicalRule(b));
  });

  it.each([
    ["-m mark ! --mark 0x0/0xff -j RETURN", "-m mark --mark 0x0/0xff -j RETURN"],
    ["-m mark --mark 0x1/0x1 -j RETURN", "-m mark --mark 0x1/0x3 -j RETURN"],
    ["-p tcp -m tcp --dport 80 -j ACCEPT", "-p udp -m udp --dport 80 -j ACCEPT"],
    [clamp, clamp.replace("1400", "1401")],
    ["-p tcp -m tcp --tcp-flags SYN,RST SYN -j DROP", "-p tcp -m tcp --tcp-flags SYN,RST RST -j DROP"],
    ["-d 172.16.0.1/32 -j RETURN", "-d 172.16.0.1/31 -j RETURN"],
    ["-d 2001:db8::1/128 -j RETURN", "-d 2001:db8::1/127 -j RETURN"],
    ["-d 10.0.0.0/8 -j RETURN", "-d ::a00:0/104 -j RETURN"],
    ["-m u32 --u32 0x0>>0x16&0x3c@0xc>>0x8=0x12c -j ACCEPT", "-m u32 --u32 0x0>>0x16&0x3c@0xc>>0x8=0x12d -j ACCEPT"],
    ["-i tev300 -j ACCEPT", "-i tev300+ -j ACCEPT"],
    ["-i tev300 -j ACCEPT", "-o tev300 -j ACCEPT"],
    ["-j SNAT --to-source 172.16.0.2", "-j SNAT --to-source 172.16.0.3"],
    ["-j RETURN", "-g RETURN"],
    ["-m comment --comment a -j RETURN", "-m comment --comment A -j RETURN"],
  ])("%s ≢ %s", (a, b) => {
    expect(canonicalRule(a)).not.toBe(canonicalRule(b));
  });

  it("says which rule is missing or extra", () => {
    expect(rulesDifference([], ["-s 10.1.0.5/32 -j RETURN", "-j DROP"])).toBe(
      'has 0 rules, want 2: rule 1 "-s 10.1.0.5/32 -j RETURN" is missing',
    );
    expect(rulesDifference(["-j DROP", "-j RETURN"], ["-j DROP"])).toBe(
      'has 2 rules, want 1: rule 2 "-j RETURN" is extra',
    );
    expect(rulesDifference(["-p 6 -j DROP"], ["-p tcp -j DROP"])).toBe("");
  });

  it("never throws on a rule it cannot read, and compares it as written", () => {
    expect(canonicalRule('-m comment --comment "unterminated')).toBe(
      canonicalRule('-m comment --comment "unterminated'),
    );
    expect(canonicalRule("stray -j DROP")).not.toBe(canonicalRule("-j DROP"));
  });
});
