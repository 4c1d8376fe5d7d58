import { describe, expect, it } from "vitest";
import { CniError } from "../../../src/cni/errors.js";
import { dispatch, type Verbs } from "../../../src/cni/skel.js";

const ok = async () => undefined;
const verbs: Verbs = { ADD: async (ctx) => ctx.conf.prevResult, DEL: ok, CHECK: ok, GC: ok, STATUS: ok };

async function invoke(env: Record<string, string>, stdin: string, v: Verbs = verbs) {
  let stdout = "";
  let stderr = "";
  const code = await dispatch("p", "0", v, {
    env: { CNI_CONTAINERID: "c1", CNI_NETNS: "/run/netns/x", CNI_IFNAME: "eth0", ...env },
    readStdin: async () => stdin,
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
  });
  return { code, stdout, stderr };
}

describe("dispatch", () => {
  it("prints an about text and exits 0 without CNI_COMMAND", async () => {
    const r = await invoke({}, "");
    expect(r).toMatchObject({ code: 0, stdout: "" });
    expect(r.stderr).toMatch(/CNI protocol versions/);
  });

  it("answers VERSION", async () => {
    const r = await invoke({ CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.0.0"}');
    expect(JSON.parse(r.stdout)).toEqual({
      cniVersion: "1.0.0",
      supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    });
  });

  it("prints the ADD result and nothing for DEL", async () => {
    const prev = { cniVersion: "1.0.0", ips: [] };
    expect(
      JSON.parse(
        (await invoke({ CNI_COMMAND: "ADD" }, JSON.stringify({ cniVersion: "1.0.0", prevResult: prev }))).stdout,
      ),
    ).toEqual(prev);
    expect(await invoke({ CNI_COMMAND: "DEL" }, '{"cniVersion":"1.0.0"}')).toMatchObject({ code: 0, stdout: "" });
  });

  it.each([
    ["ADD", "not json", 6],
    ["ADD", "[1]", 6],
    ["ADD", '{"cniVersion":"9.9.9"}', 1],
    ["CHECK", '{"cniVersion":"0.3.1"}', 1],
    ["GC", '{"cniVersion":"1.0.0"}', 1],
  ])("%s with %s fails with code %i as one JSON document", async (command, stdin, code) => {
    const r = await invoke({ CNI_COMMAND: command }, stdin);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code });
  });

  it("turns verb errors into their CNI code, and unknown errors into 999", async () => {
    const failing: Verbs = { ...verbs, ADD: async () => Promise.reject(new CniError(7, "bad field", "why")) };
    expect(JSON.parse((await invoke({ CNI_COMMAND: "ADD" }, '{"cniVersion":"1.0.0"}', failing)).stdout)).toEqual({
      cniVersion: "1.0.0",
      code: 7,
      msg: "bad field",
      details: "why",
    });
    const crashing: Verbs = { ...verbs, DEL: async () => Promise.reject(new Error("boom")) };
    expect(JSON.parse((await invoke({ CNI_COMMAND: "DEL" }, '{"cniVersion":"1.0.0"}', crashing)).stdout)).toMatchObject(
      { code: 999, msg: "boom" },
    );
  });
});
