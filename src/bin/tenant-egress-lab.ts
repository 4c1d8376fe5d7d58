/**
 * tenant-egress-lab: the demo and the lab's housekeeping (npm run demo / npm run lab -- down).
 */
import { demo, labDown } from "../lab/demo.js";

const USAGE = `Usage: tenant-egress-lab demo [--keep]   build the lab, measure, show the table, tear down
       tenant-egress-lab down              remove a lab left up by demo --keep`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "demo" && rest.every((a) => a === "--keep")) return demo({ keep: rest.includes("--keep") });
  if (command === "down" && rest.length === 0) return labDown();
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
