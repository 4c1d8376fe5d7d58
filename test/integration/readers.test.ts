/**
 * A daemon's kept readers across a namespace's life: a reader is a process inside the namespace,
 * so when the namespace behind a path is deleted and made again under the same name, the kept
 * reader still sees the old one; it must be replaced, not asked (a stale read of a namespace
 * nobody can reach any more).
 */
import { afterAll, describe, expect, it } from "vitest";
import { deleteNamespaces, uniquePrefix } from "../../src/lab/topology.js";
import { KeptReaders } from "../../src/net/readers.js";
import { run } from "../../src/net/run.js";

const prefix = uniquePrefix("rd");
const ns = `${prefix}-a`;
const path = `/run/netns/${ns}`;
const LINKS = ["ip", "-json", "-batch", "-"];
const linkNames = async (readers: KeptReaders) =>
  (JSON.parse(await readers.ask(LINKS, "link show\n")) as Array<{ ifname: string }>).map((l) => l.ifname).sort();

afterAll(async () => {
  await deleteNamespaces(`${prefix}-`);
});

describe("KeptReaders in a namespace", () => {
  it("reads the namespace the path names now, also after it was deleted and made again", async () => {
    await run(["ip", "netns", "add", ns]);
    await run(["ip", "-n", ns, "link", "add", "old0", "type", "veth", "peer", "name", "old1"]);
    const readers = new KeptReaders(path);
    try {
      expect(await linkNames(readers)).toEqual(["lo", "old0", "old1"]);
      await run(["ip", "netns", "del", ns]);
      await run(["ip", "netns", "add", ns]);
      await run(["ip", "-n", ns, "link", "add", "new0", "type", "veth", "peer", "name", "new1"]);
      expect(await linkNames(readers)).toEqual(["lo", "new0", "new1"]);
    } finally {
      readers.close();
    }
  });
});
