/**
 * scripts/install.sh and the example conflists, as an installer would use them: binaries copied
 * into a bin dir outside the checkout must run on their own (no package.json, no node_modules),
 * and every example conflist must be accepted by the plugin it configures.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../../src/net/run.js";
import { parseConfig } from "../../src/pod/config.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "te-install-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("scripts/install.sh", () => {
  it("installs both executables and a conflist, which run outside the checkout", async () => {
    const r = await run([
      "bash",
      "scripts/install.sh",
      "--bin-dir",
      join(dir, "bin"),
      "--conf-dir",
      join(dir, "net.d"),
      "--conflist",
      "conflist/10-bridge-tenant-egress.conflist",
    ]);
    expect(r.stdout).toMatch(/installed .*tenant-egress\n/);
    expect((await readdir(join(dir, "bin"))).sort()).toEqual(["tenant-egress", "tenant-egress-gateway"]);
    const version = await run([join(dir, "bin", "tenant-egress")], {
      env: { PATH: process.env.PATH, CNI_COMMAND: "VERSION" },
      input: '{"cniVersion":"1.1.0"}',
    });
    expect(JSON.parse(version.stdout)).toMatchObject({
      cniVersion: "1.1.0",
      supportedVersions: expect.arrayContaining(["0.3.1", "1.0.0", "1.1.0"]),
    });
    const help = await run([join(dir, "bin", "tenant-egress-gateway"), "--help"]);
    expect(help.stdout).toMatch(/apply -f FILE/);
  });

  it("refuses to overwrite an existing conflist without --force", async () => {
    const target = join(dir, "net.d", "10-bridge-tenant-egress.conflist");
    await writeFile(target, '{"keep":"me"}');
    const r = await run(
      [
        "bash",
        "scripts/install.sh",
        "--bin-dir",
        join(dir, "bin"),
        "--conf-dir",
        join(dir, "net.d"),
        "--conflist",
        "conflist/10-bridge-tenant-egress.conflist",
      ],
      { allowFailure: true },
    );
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/exists; pass --force/);
    expect(await readFile(target, "utf8")).toBe('{"keep":"me"}');
  });

  it("rejects unknown options", async () => {
    const r = await run(["bash", "scripts/install.sh", "--frobnicate"], { allowFailure: true });
    expect(r.exitCode).toBe(2);
  });
});

describe("STATUS and VERSION of the installed plugin", () => {
  const status = (path: string) =>
    run([join(dir, "bin", "tenant-egress")], {
      env: { PATH: path, CNI_COMMAND: "STATUS" },
      input: JSON.stringify({ cniVersion: "1.1.0", name: "n", type: "tenant-egress" }),
      allowFailure: true,
    });

  it("reports ready, silently, when its tools are on PATH", async () => {
    expect(await status(process.env.PATH ?? "")).toMatchObject({ exitCode: 0, stdout: "" });
  });

  it("reports code 50 naming the missing tools when they are not", async () => {
    // Only node itself: the plugin must start, then find none of ip, iptables, ip6tables, nsenter, sysctl.
    const nodeDir = join(dir, "only-node");
    await run(["mkdir", "-p", nodeDir]);
    await run(["ln", "-sf", (await run(["sh", "-c", "command -v node"])).stdout.trim(), join(nodeDir, "node")]);
    await run(["ln", "-sf", "/usr/bin/env", join(nodeDir, "env")]);
    const r = await status(nodeDir);
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      cniVersion: "1.1.0",
      code: 50,
      msg: expect.stringMatching(
        /required tools not found in PATH: ip, iptables-restore, iptables-save, ip6tables-restore, ip6tables-save, nsenter, sysctl/,
      ),
    });
  });
});

describe("example conflists", () => {
  it.each([
    "10-bridge-tenant-egress.conflist",
    "10-ptp-tenant-egress.conflist",
    "10-annotations-tenant-egress.conflist",
  ])("%s is accepted by the plugin", async (file) => {
    const list = JSON.parse(await readFile(join("conflist", file), "utf8")) as {
      cniVersion: string;
      name: string;
      plugins: Array<Record<string, unknown>>;
    };
    const entry = list.plugins.find((p) => p.type === "tenant-egress")!;
    expect(() => parseConfig({ cniVersion: list.cniVersion, name: list.name, ...entry })).not.toThrow();
  });
});
