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

/** Starts `argv` inside namespace `ns` (a name under /run/netns); `stop` ends it and returns its stdout. */
export function startIn(ns: string, argv: readonly string[]): Background {
  const child: ResultPromise = execa("ip", ["netns", "exec", ns, ...argv], {
    reject: false,
    cleanup: true,
    stdin: "ignore",
  });
  return {
    pid: child.pid,
    async stop() {
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      const r = await child;
      clearTimeout(timer);
      return String(r.stdout ?? "");
    },
  };
}
