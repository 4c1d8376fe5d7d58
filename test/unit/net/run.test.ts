/**
 * A kept tool: `ask` answers once the tool has printed as many lines as asked for, and the same
 * process then takes more input with `finish`, whose stdout is what no `ask` took (a reader kept
 * for a daemon's life must not hold everything it ever printed); a tool that exits before
 * answering fails as `run` does.
 */
import { describe, expect, it } from "vitest";
import { CommandError, start } from "../../../src/net/run.js";

describe("start … ask … finish", () => {
  it("answers line by line, then finishes the same process with more input", async () => {
    const tool = start(["cat"]);
    expect(await tool.ask("one\ntwo\n", 2)).toBe("one\ntwo\n");
    expect(await tool.ask("three\n", 1)).toBe("three\n");
    const r = await tool.finish("four\n");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("four\n");
  });

  it("answers from a part of what the tool printed, and keeps the rest for the next question", async () => {
    const tool = start(["cat"]);
    expect(await tool.ask("one\ntwo\nthree\n", 1)).toBe("one\n");
    expect(await tool.ask("", 2)).toBe("two\nthree\n");
    expect((await tool.finish("")).stdout).toBe("");
  });

  it("fails with the tool's status when it exits before answering", async () => {
    const tool = start(["sh", "-c", "echo partial; echo broken >&2; exit 3"]);
    const e = await tool.ask("", 2).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CommandError);
    expect((e as CommandError).exitCode).toBe(3);
    expect((e as CommandError).stderr).toContain("broken");
  });
});
