/**
 * Long-running helper processes of the lab (servers, captures) started inside a namespace and
 * ended by PID when the lab goes down. execa earns its place here: it kills its children when
 * this process exits (also on Ctrl-C), so a failed test or demo never leaves a server behind.
 */
import { execa, type ResultPromise } from "execa";

export interface Background {
  pid: number | undefined;
  stop(): Promise<string>;
}

export interface Started extends Background {
  /** Resolves once the process has written something matching `pattern` to stderr (its readiness signal). */
  stderrMatches(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

/** Starts `argv` inside namespace `ns` (a name under /run/netns); `stop` ends it and returns its stdout. */
export function startIn(ns: string, argv: readonly string[]): Started {
  const child: ResultPromise = execa("ip", ["netns", "exec", ns, ...argv], {
    reject: false,
    cleanup: true,
    stdin: "ignore",
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return {
    pid: child.pid,
    stderrMatches(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pattern.test(stderr)) return false;
          done();
          resolve();
          return true;
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${argv.join(" ")}: no ${pattern} on stderr within ${timeoutMs} ms: ${stderr.trim()}`));
        }, timeoutMs);
        const exited = () => {
          done();
          reject(new Error(`${argv.join(" ")} exited before writing ${pattern}: ${stderr.trim()}`));
        };
        const done = () => {
          clearTimeout(timer);
          child.stderr?.off("data", check);
          child.off("exit", exited);
        };
        if (check()) return;
        child.stderr?.on("data", check);
        child.once("exit", exited);
      });
    },
    async stop() {
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      const r = await child;
      clearTimeout(timer);
      return String(r.stdout ?? "");
    },
  };
}
