/**
 * Tools started together by one shell in a namespace (here this process's own): each answers,
 * finishes and fails on its own, as a tool started alone does.
 */
import { describe, expect, it } from "vitest";
import { CommandError } from "../../../src/net/run.js";
import { sessionScript, startSession } from "../../../src/net/session.js";

const SELF = "/proc/self/ns/net";

describe("startSession", () => {
  it("runs each tool with its own input, output and status", async () => {
    const [reader, saver, writer] = startSession(SELF, [
      { argv: ["cat"], input: true, output: true },
      { argv: ["echo", "saved"], output: true },
      { argv: ["cat"], input: true },
    ]);
    expect(await reader!.ask("one\n", 1)).toBe("one\n");
    expect((await saver!.finish("")).stdout).toBe("saved\n");
    const w = await writer!.finish("to-stderr\n");
    expect(w).toMatchObject({ exitCode: 0, stdout: "" });
    expect(w.stderr).toBe("to-stderr\n");
    expect(await reader!.finish("two\n")).toMatchObject({ exitCode: 0, stdout: "two\n" });
  });

  it("fails a tool on its own status, with its own stderr", async () => {
    const [ok, bad] = startSession(SELF, [{ argv: ["true"] }, { argv: ["ls", "/no/such/path"], output: true }]);
    expect((await ok!.finish("")).exitCode).toBe(0);
    const e = await bad!.finish("").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CommandError);
    expect((e as CommandError).exitCode).toBe(2);
    expect((e as CommandError).stderr).toContain("/no/such/path");
  });

  it("names a tool the shell cannot find as missing", async () => {
    const [missing] = startSession(SELF, [{ argv: ["no-such-tool-here"], input: true }]);
    const e = (await missing!.finish("").catch((x: unknown) => x)) as CommandError;
    expect(e.exitCode).toBe(127);
    expect(e.message).toMatch(/no-such-tool-here: command not found.*a required tool is missing/s);
  });

  it("fails every tool with nsenter's words when the namespace is not there", async () => {
    const [a, b] = startSession("/run/netns/no-such-namespace-here", [{ argv: ["true"] }, { argv: ["true"] }]);
    for (const t of [a!, b!]) {
      const e = (await t.finish("").catch((x: unknown) => x)) as CommandError;
      expect(e).toBeInstanceOf(CommandError);
      expect(e.message).toMatch(/no-such-namespace-here/);
    }
  });

  it("runs in this process's own namespace without nsenter", async () => {
    const [a] = startSession(undefined, [{ argv: ["cat"], input: true, output: true }]);
    expect(await a!.finish("here\n")).toMatchObject({ exitCode: 0, stdout: "here\n" });
  });

  it("takes only plain words into its script", () => {
    expect(() => sessionScript([{ tool: { argv: ["echo", "a;b"] }, stderr: 3 }])).toThrow(/not a plain word/);
    expect(() => sessionScript([{ tool: { argv: ["echo", "$(id)"] }, stderr: 3 }])).toThrow(/not a plain word/);
  });

  it("refuses more tools than the shell has descriptors for", () => {
    expect(() =>
      startSession(
        SELF,
        Array.from({ length: 4 }, () => ({ argv: ["true"], output: true })),
      ),
    ).toThrow(/more descriptors/);
  });
});
