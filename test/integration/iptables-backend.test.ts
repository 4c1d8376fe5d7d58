/**
 * The lab runs on the iptables backend TENANT_EGRESS_IPTABLES names (nft unless it says legacy):
 * what every other suite's processes reach through PATH, asserted once here.
 */
import { describe, expect, it } from "vitest";
import { run } from "../../src/net/run.js";

describe("the iptables backend of this run", () => {
  it("is the one TENANT_EGRESS_IPTABLES names, for iptables, ip6tables, -save and -restore alike", async () => {
    const want = process.env.TENANT_EGRESS_IPTABLES === "legacy" ? "(legacy)" : "(nf_tables)";
    for (const tool of [
      "iptables",
      "iptables-save",
      "iptables-restore",
      "ip6tables",
      "ip6tables-save",
      "ip6tables-restore",
    ])
      expect({ tool, version: (await run([tool, "--version"])).stdout.trim() }).toEqual({
        tool,
        version: expect.stringContaining(want),
      });
  });
});
