/**
 * `npm run bench` / `npm run bench:gateway`: one command regenerates every number the README
 * quotes, in a lab of its own (namespaces under a prefix unique to the run, `teb<hex>-*`, removed on exit,
 * failure or Ctrl-C), so two benches, or a bench and the test suite, can run side by side.
 */
import { cpus, release } from "node:os";
import { benchFailover } from "./bench-failover.js";
import { benchGateway } from "./bench-gateway.js";
import { benchGatewayScale } from "./bench-gateway-scale.js";
import { benchPlugins } from "./bench-plugin.js";
import { type BenchRun, markdown, writeReport } from "./bench-report.js";
import { createLab, deleteNamespaces, uniquePrefix } from "./topology.js";
import { startInetServers } from "./traffic.js";

export interface BenchOptions {
  /** "scale": only the gateway's scale part; "failover": only the HA pair's failover (n repetitions, its own lab). */
  only?: "plugin" | "gateway" | "scale" | "failover";
  seconds: number;
  /** The gateway's scale part: tenants (/16 overlays each) and active pods at the largest step. */
  tenants: number;
  pods: number;
  n: number;
  out: string;
}

export async function bench(o: BenchOptions): Promise<number> {
  if (o.only === "failover") return benchFailover({ n: o.n, out: o.out });
  const say = (s: string) => process.stdout.write(`  · ${s}\n`);
  const prefix = uniquePrefix("b");
  const onSignal = () => void deleteNamespaces(`${prefix}-`).finally(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const lab = await createLab(prefix);
  try {
    const servers = await startInetServers(lab.ns.inet);
    const result: BenchRun = {
      date: new Date().toISOString().slice(0, 19).replace(/:/g, "-"),
      machine: { cpus: cpus().length, kernel: release(), node: process.version },
    };
    try {
      if (o.only === undefined || o.only === "gateway") result.gateway = await benchGateway(lab, o.seconds, say);
      if (o.only !== "plugin") result.gatewayScale = await benchGatewayScale(lab, o.tenants, o.pods, say);
      if (o.only === undefined || o.only === "plugin") result.plugin = await benchPlugins(lab, "10.23.0.3", o.n, say);
    } finally {
      await servers.stop();
    }
    const files = await writeReport(o.out, result);
    process.stdout.write(`\n${markdown(result)}\nwritten: ${files.join(", ")}\n`);
    return 0;
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    await lab.teardown();
  }
}
