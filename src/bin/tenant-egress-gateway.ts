/**
 * tenant-egress-gateway: the egress gateway CLI. Thin main: argv in, exit code out.
 */
import { main } from "../gateway/cli.js";

void main(process.argv.slice(2), { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) }).then(
  (code) => {
    process.exitCode = code;
  },
);
