/**
 * The shipped executables are Node single executable applications: they must run on a node with
 * no Node.js at all, and the runtime's environment must not change what they run. "No Node.js"
 * is made real with a private mount namespace in which the machine's node binary is covered by
 * /dev/null (so nothing can execute it) and PATH names no other; a full ADD/CHECK/DEL of a pod
 * then runs there. NODE_OPTIONS is the variable that matters: an SEA honours it by default, and
 * a `--require` in it would run someone else's code inside the plugin.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cni, writeBridgeConflist } from "../../src/lab/cni-client.js";
import { applyGateway } from "../../src/lab/gateway-cli.js";
import { PLUGIN, pluginEnv } from "../../src/lab/plugin-runner.js";
import { netnsSnapshot, waitSettled } from "../../src/lab/snapshot.js";
import { labTenant } from "../../src/lab/tenants.js";
import { createLab, type Lab, uniquePrefix } from "../../src/lab/topology.js";
import { run } from "../../src/net/run.js";

const GATEWAY = resolve("dist/tenant-egress-gateway");
const PATH_WITHOUT_NODE = "/usr/sbin:/usr/bin:/sbin:/bin";

let lab: Lab;
let scratch: string;
let nodeBinary: string;

beforeAll(async () => {
  lab = await createLab(uniquePrefix("e"));
  scratch = await mkdtemp(join(tmpdir(), "te-exe-"));
  nodeBinary = (await run(["sh", "-c", 'readlink -f "$(command -v node)"'])).stdout.trim();
});

afterAll(async () => {
  await lab?.teardown();
  await rm(scratch, { recursive: true, force: true });
});

/** Runs argv in a private mount namespace where the machine's node cannot be executed. */
function withoutNode(argv: string[], options: Parameters<typeof run>[1] = {}) {
  const script = 'mount --bind /dev/null "$0" && ! command -v node >/dev/null && exec "$@"';
  return run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, nodeBinary, ...argv], {
    allowFailure: true,
    ...options,
  });
}

describe("single executables", () => {
  it("are real executables, not scripts for node", async () => {
    for (const exe of [PLUGIN, GATEWAY]) {
      const head = (await readFile(exe)).subarray(0, 4);
      expect(head.toString("latin1")).toBe("\x7fELF");
      expect((await stat(exe)).mode & 0o111).toBeTruthy();
    }
  });

  it("run with no node on the machine: VERSION, the gateway's help, and a pod's ADD/CHECK/DEL", async () => {
    const env = { PATH: PATH_WITHOUT_NODE, CNI_COMMAND: "VERSION" };
    const version = await withoutNode([PLUGIN], { env, input: '{"cniVersion":"1.1.0"}' });
    expect(version.stderr).toBe("");
    expect(JSON.parse(version.stdout)).toMatchObject({ cniVersion: "1.1.0" });
    expect((await withoutNode([GATEWAY, "--help"], { env: { PATH: PATH_WITHOUT_NODE } })).stdout).toMatch(
      /apply -f FILE/,
    );

    const gw = await lab.addGateway("gw", 2);
    await applyGateway(gw.ns, lab.dir, {
      tenants: [labTenant("t", 100, "172.16.0.0/24", { upload: "10mbit", download: "10mbit" })],
    });
    const main = await writeBridgeConflist({ name: `${lab.prefix}-main`, dir: lab.dir });
    const pod = await lab.addPodNamespace("pod");
    const prevResult = JSON.parse(await cni("add", { node: lab.ns.nodeA, network: main, pod })) as unknown;
    await waitSettled(pod);
    const asMainLeftIt = await netnsSnapshot(pod);
    const conf = JSON.stringify({
      cniVersion: "1.0.0",
      name: main.name,
      type: "tenant-egress",
      gateway: gw.ip,
      prevResult,
    });
    const call = (verb: string) =>
      withoutNode([PLUGIN], {
        netns: `/run/netns/${lab.ns.nodeA}`,
        env: pluginEnv({
          PATH: PATH_WITHOUT_NODE,
          CNI_COMMAND: verb,
          CNI_CONTAINERID: "nonode",
          CNI_NETNS: `/run/netns/${pod}`,
        }),
        input: conf,
      });
    const add = await call("ADD");
    expect(add.exitCode, add.stdout + add.stderr).toBe(0);
    expect(JSON.parse(add.stdout)).toEqual(prevResult);
    expect(await call("CHECK")).toMatchObject({ exitCode: 0, stdout: "" });
    expect(await call("DEL")).toMatchObject({ exitCode: 0, stdout: "" });
    expect(await netnsSnapshot(pod)).toBe(asMainLeftIt);
  });

  it("ignore NODE_OPTIONS: a --require in the runtime's environment runs nothing", async () => {
    const marker = join(scratch, "ran");
    const evil = join(scratch, "evil.js");
    await writeFile(evil, `require("fs").writeFileSync(${JSON.stringify(marker)}, "x");`);
    const env = { PATH: process.env.PATH, CNI_COMMAND: "VERSION", NODE_OPTIONS: `--require ${evil}` };
    const version = await run([PLUGIN], { env, input: '{"cniVersion":"1.0.0"}' });
    expect(JSON.parse(version.stdout)).toMatchObject({ cniVersion: "1.0.0" });
    await run([GATEWAY, "--help"], { env });
    await expect(stat(marker)).rejects.toThrow(/ENOENT/);
    // The same variable does run code in a plain node process: the attempt is real.
    await run(["node", "-e", "0"], { env });
    await expect(stat(marker)).resolves.toBeTruthy();
  });
});
