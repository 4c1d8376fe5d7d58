/**
 * tenant-egress-lab: the demo and the lab's housekeeping (npm run demo / npm run lab -- down).
 */
import { parseArgs } from "node:util";
import { bench } from "../lab/bench.js";
import { demo, labDown } from "../lab/demo.js";

const USAGE = `Usage: tenant-egress-lab demo [--keep]   build the lab, measure, show the table, tear down
       tenant-egress-lab down              remove a lab left up by demo --keep
       tenant-egress-lab bench [--only plugin|gateway|scale|failover] [--seconds S] [--n N] [--tenants T] [--pods P] [--out DIR]
                                           benchmark the plugin and the gateway (shaping, and scale up to
                                           T tenants (50) and P pods (1000)); write JSON, Markdown, SVG;
                                           failover: N failures of an HA pair (default 10)`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "demo" && rest.every((a) => a === "--keep")) return demo({ keep: rest.includes("--keep") });
  if (command === "down" && rest.length === 0) return labDown();
  if (command === "bench") {
    const { values } = parseArgs({
      args: rest,
      options: {
        only: { type: "string" },
        seconds: { type: "string" },
        n: { type: "string" },
        tenants: { type: "string" },
        pods: { type: "string" },
        out: { type: "string" },
      },
    });
    if (
      values.only !== undefined &&
      values.only !== "plugin" &&
      values.only !== "gateway" &&
      values.only !== "scale" &&
      values.only !== "failover"
    )
      throw new Error("--only takes plugin, gateway, scale or failover");
    const tenants = Number(values.tenants ?? 50);
    const pods = Number(values.pods ?? 1000);
    if (!(Number.isInteger(tenants) && tenants >= 1 && tenants <= 150)) throw new Error("--tenants takes 1 to 150");
    if (!(Number.isInteger(pods) && pods >= 1 && pods <= 65000)) throw new Error("--pods takes 1 to 65000");
    return bench({
      ...(values.only ? { only: values.only } : {}),
      seconds: Number(values.seconds ?? 5),
      n: Number(values.n ?? (values.only === "failover" ? 10 : 30)),
      tenants,
      pods,
      out: values.out ?? "test/bench/results",
    });
  }
  process.stderr.write(`${USAGE}\n`);
  return command === "--help" || command === "-h" ? 0 : 2;
}

void main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: Error) => {
    process.stderr.write(`tenant-egress-lab: ${e.message}\n`);
    process.exitCode = 1;
  },
);
