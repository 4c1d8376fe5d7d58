/**
 * Where a plugin invocation's time goes, for a person asking why pod creation is slow on a
 * node: with TENANT_EGRESS_TRACE=1 in the environment, each phase and each process started
 * (how long `spawn` held this process's only thread, when the tool ended) is a line on stderr,
 * in milliseconds since the process started. Off, it costs one environment lookup.
 */
const ON = process.env.TENANT_EGRESS_TRACE === "1";

const now = () => performance.now().toFixed(1);

/** A phase reached. */
export function trace(what: string): void {
  if (ON) process.stderr.write(`tenant-egress trace ${now()} ms: ${what}\n`);
}

/** Marks a process started (the time `spawn` took) and, once `ended` settles, its end. */
export function traceProcess(argv: readonly string[], spawnStarted: number, ended: Promise<unknown>): void {
  if (!ON) return;
  const name = argv
    .filter((a) => !a.startsWith("--net="))
    .join(" ")
    .slice(0, 80);
  trace(`started ${name} (spawn ${(performance.now() - spawnStarted).toFixed(1)} ms)`);
  void ended.finally(() => trace(`ended ${name}`));
}
