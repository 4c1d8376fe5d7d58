/**
 * A daemon's kept readers: one process answers question after question; questions asked at
 * once get their own answers; a reader that died since it last answered is replaced and the
 * question answered; a reader whose answer failed is not asked again; after `close` a question
 * gets a process of its own.
 */
import { afterEach, describe, expect, it } from "vitest";
import { KeptReaders } from "../../../src/net/readers.js";
import { CommandError } from "../../../src/net/run.js";

/** Answers each line with its own pid and the line: which process answered is visible. */
const ECHO = ["sh", "-c", 'while read -r l; do echo "$$ $l"; done'];
const pidOf = (answer: string) => Number(answer.split(" ")[0]);

describe("KeptReaders", () => {
  let readers: KeptReaders;
  afterEach(() => readers.close());

  it("asks the same process each time", async () => {
    readers = new KeptReaders(undefined);
    const a = await readers.ask(ECHO, "one\n");
    const b = await readers.ask(ECHO, "two\nthree\n");
    expect(a).toMatch(/^\d+ one\n$/);
    expect(b).toBe(`${pidOf(a)} two\n${pidOf(a)} three\n`);
  });

  it("gives questions asked at once their own answers", async () => {
    readers = new KeptReaders(undefined);
    const answers = await Promise.all(["a\nb\n", "c\n", "d\ne\nf\n"].map((q) => readers.ask(ECHO, q)));
    expect(answers.map((x) => x.replace(/^\d+ /gm, ""))).toEqual(["a\nb\n", "c\n", "d\ne\nf\n"]);
  });

  it("replaces a reader that died since it last answered", async () => {
    readers = new KeptReaders(undefined);
    const first = pidOf(await readers.ask(ECHO, "x\n"));
    process.kill(first, "SIGKILL");
    await new Promise((r) => setTimeout(r, 100));
    const again = await readers.ask(ECHO, "y\n");
    expect(again).toMatch(/^\d+ y\n$/);
    expect(pidOf(again)).not.toBe(first);
  });

  it("fails as run does when a new reader cannot answer, and starts another for the next question", async () => {
    readers = new KeptReaders(undefined);
    const broken = ["sh", "-c", "echo broken >&2; exit 3"];
    const e = await readers.ask(broken, "q\n").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CommandError);
    expect((e as CommandError).exitCode).toBe(3);
    const e2 = await readers.ask(broken, "q\n").catch((x: unknown) => x);
    expect((e2 as CommandError).exitCode).toBe(3);
  });

  it("answers with a process of its own after close", async () => {
    readers = new KeptReaders(undefined);
    const kept = pidOf(await readers.ask(ECHO, "x\n"));
    readers.close();
    const after = await readers.ask(["sh", "-c", "read -r l; echo $$ $l"], "y\n");
    expect(after).toMatch(/^\d+ y\n$/);
    expect(pidOf(after)).not.toBe(kept);
  });
});
