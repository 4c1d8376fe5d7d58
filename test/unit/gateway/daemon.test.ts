import { describe, expect, it } from "vitest";
import { parseDuration } from "../../../src/gateway/daemon.js";
import { parseListen } from "../../../src/gateway/http.js";
import { makeLogger } from "../../../src/gateway/log.js";

describe("run's options", () => {
  it("reads --resync durations in ms, s (the default unit) and m", () => {
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("2m")).toBe(120_000);
    expect(parseDuration("1.5")).toBe(1500);
    for (const bad of ["0s", "", "-1s", "10h", "s", "1e3"]) expect(parseDuration(bad)).toBeUndefined();
  });

  it("reads --listen as ADDR:PORT, :PORT or [IPv6]:PORT", () => {
    expect(parseListen("127.0.0.1:9464")).toEqual({ host: "127.0.0.1", port: 9464 });
    expect(parseListen(":9464")).toEqual({ host: "0.0.0.0", port: 9464 });
    expect(parseListen("[::1]:80")).toEqual({ host: "::1", port: 80 });
    for (const bad of ["9464", "host:99999", "a:b", "::1:80"])
      expect(() => parseListen(bad)).toThrow(/--listen takes ADDR:PORT/);
  });
});

describe("the daemon's log lines", () => {
  const at = () => new Date("2026-12-01T21:00:00.000Z");

  it("text: a timestamp, the level unless info, the sentence", () => {
    const lines: string[] = [];
    const log = makeLogger("text", (l) => lines.push(l), at);
    log("info", "reconcile", "resync: nothing to change", { reason: "resync" });
    log("warn", "mac-contract", "pod at VTEP 10.22.0.7 …", { vtep: "10.22.0.7" });
    expect(lines).toEqual([
      "2026-12-01T21:00:00.000Z resync: nothing to change\n",
      "2026-12-01T21:00:00.000Z WARN pod at VTEP 10.22.0.7 …\n",
    ]);
  });

  it("json: one object per line with the same facts as fields", () => {
    const lines: string[] = [];
    makeLogger("json", (l) => lines.push(l), at)("error", "config", "refused f: bad", { generation: 2 });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith("\n")).toBe(true);
    expect(JSON.parse(lines[0]!)).toEqual({
      time: "2026-12-01T21:00:00.000Z",
      level: "error",
      event: "config",
      msg: "refused f: bad",
      generation: 2,
    });
  });
});
