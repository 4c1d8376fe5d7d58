/**
 * GC with two enforcing networks on one node: the node's enforcement chains of both live in one
 * nftables table, and each network's GC judges only its own (by the network name in each chain's
 * owner comment), so network A's GC never removes B's chains, whatever A's valid list says.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cni, type Network, writeBridgeConflist } from "../../src/lab/cni-client.js";
import { createLab, type Lab, uniquePrefix } from "../../src/lab/topology.js";
import { run } from "../../src/net/run.js";
import { plainGateway } from "./plain-gateway.js";
import { runPlugin } from "./plugin-driver.js";

let lab: Lab;
let gw: { ns: string; ip: string };
const nets: Record<"a" | "b", Network> = {} as Record<"a" | "b", Network>;

/** The owners (network:containerID/ifname) of the node's enforcement chains. */
const owners = async () =>
  (
    (await run(["ip", "netns", "exec", lab.ns.nodeA, "nft", "list", "table", "netdev", "tenant-egress"])).stdout.match(
      /comment "tenant-egress:[^"]+"/g,
    ) ?? []
  )
    .map((c) => c.slice('comment "tenant-egress:'.length, -1))
    .sort();

const gc = (net: "a" | "b", valid: Array<{ containerID: string; ifname: string }>) =>
  runPlugin(lab.ns.nodeA, "", "GC", {
    cniVersion: "1.1.0",
    name: nets[net].name,
    type: "tenant-egress",
    enforce: true,
    "cni.dev/valid-attachments": valid,
  });

beforeAll(async () => {
  lab = await createLab(uniquePrefix("g"));
  gw = await lab.addGateway("gw", 2);
  await plainGateway(gw.ns, gw.ip);
  for (const [net, from, to] of [
    ["a", 10, 99],
    ["b", 100, 199],
  ] as const)
    nets[net] = await writeBridgeConflist({
      name: `${lab.prefix}-${net}`,
      dir: lab.dir,
      range: { start: `10.22.0.${from}`, end: `10.22.0.${to}` },
      egress: { gateway: gw.ip, enforce: true },
    });
});

afterAll(async () => {
  await lab?.teardown();
});

describe("two enforcing networks on one node", () => {
  it("GC of each with its own valid attachments leaves the other's chains; an empty list removes only its own", async () => {
    const pods = { a: await lab.addPodNamespace("pa"), b: await lab.addPodNamespace("pb") };
    for (const net of ["a", "b"] as const) await cni("add", { node: lab.ns.nodeA, network: nets[net], pod: pods[net] });
    const all = await owners();
    expect(all).toHaveLength(2);
    const id = (net: "a" | "b") => {
      const owner = all.find((o) => o.startsWith(`${nets[net].name}:`))!;
      return { containerID: owner.split(":")[1]!.split("/")[0]!, ifname: "eth0" };
    };
    for (const net of ["a", "b"] as const) {
      expect(await gc(net, [id(net)])).toMatchObject({ exitCode: 0, stdout: "" });
      expect(await owners()).toEqual(all);
    }
    expect(await gc("a", [])).toMatchObject({ exitCode: 0, stdout: "" });
    expect(await owners()).toEqual(all.filter((o) => o.startsWith(`${nets.b.name}:`)));
    expect(await gc("b", [])).toMatchObject({ exitCode: 0, stdout: "" });
    expect(await owners()).toEqual([]);
    for (const net of ["a", "b"] as const) await cni("del", { node: lab.ns.nodeA, network: nets[net], pod: pods[net] });
  });
});
