/**
 * The gateway talks to conntrackd's control socket itself (src/gateway/ha/conntrackd.ts): its
 * request codes must be the ones the installed conntrackd client sends, and its client must
 * behave as that client does (an answer read to the end, a commit waited for until the daemon
 * closes the connection). A UNIX server stands in for the daemon; the real client talks to it.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ConntrackdFiles,
  CTL_REQUESTS,
  type CtlRequest,
  conntrackdCtl,
} from "../../../../src/gateway/ha/conntrackd.js";
import { run } from "../../../../src/net/run.js";

let dir: string;
let files: ConntrackdFiles;
let server: Server;
/** What the stand-in does with each connection: gets the 4 bytes it was sent. */
let answer: (socket: Socket, request: Buffer) => void;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "te-ctl-"));
  files = { config: join(dir, "conntrackd.conf"), lock: join(dir, "lock"), socket: join(dir, "ctl") };
  // Only what the client reads: where the socket is (the sync section must parse too).
  await writeFile(
    files.config,
    `General {\n  LockFile ${files.lock}\n  UNIX {\n    Path ${files.socket}\n  }\n}\nSync {\n  Mode FTFW {\n  }\n  UDP {\n    IPv4_address 127.0.0.1\n    IPv4_Destination_Address 127.0.0.2\n    Port 3780\n    Interface lo\n  }\n}\n`,
  );
  server = createServer((socket) => {
    let got = Buffer.alloc(0);
    socket.on("data", (d) => {
      got = Buffer.concat([got, d]);
      if (got.length === 4) answer(socket, got);
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(files.socket, r));
});

afterAll(async () => {
  await new Promise<void>((r) => server?.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

describe("conntrackd's control socket", () => {
  it("gets the request code the installed client sends for each flag", async () => {
    const sent: Record<string, string> = {};
    for (const flag of Object.keys(CTL_REQUESTS) as CtlRequest[]) {
      const got = new Promise<Buffer>((resolve) => {
        answer = (socket, request) => {
          resolve(request);
          socket.end();
        };
      });
      await run(["timeout", "5", "conntrackd", "-C", files.config, flag], { allowFailure: true });
      sent[flag] = (await got).toString("hex");
    }
    const ours: Record<string, string> = {};
    for (const flag of Object.keys(CTL_REQUESTS) as CtlRequest[]) {
      const got = new Promise<Buffer>((resolve) => {
        answer = (socket, request) => {
          resolve(request);
          socket.end();
        };
      });
      const r = await conntrackdCtl(files, flag);
      expect(r.exitCode).toBe(0);
      ours[flag] = (await got).toString("hex");
    }
    expect(ours).toEqual(sent);
  });

  it("reads the whole answer, and waits for a commit until the daemon closes the connection", async () => {
    const text = "cache internal:\ncurrent active connections:\t 3\n".repeat(200);
    answer = (socket) => {
      socket.write(text.slice(0, 1000));
      setTimeout(() => socket.end(text.slice(1000)), 150);
    };
    const started = performance.now();
    const r = await conntrackdCtl(files, "-c");
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(r).toEqual({ stdout: text, stderr: "", exitCode: 0 });
  });

  it("says so when no conntrackd listens", async () => {
    const r = await conntrackdCtl({ ...files, socket: join(dir, "nobody") }, "-s");
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/conntrackd -s: .*ENOENT/);
  });
});
