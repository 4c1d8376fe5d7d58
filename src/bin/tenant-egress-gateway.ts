/**
 * tenant-egress-gateway: the egress gateway CLI. Thin main: argv in, exit code out. `-f` takes
 * the cluster's tenants file as well as a gateway configuration (the tenants module sits above
 * both halves, so it is wired here rather than imported by the gateway).
 */
import { main } from "../gateway/cli.js";
import { gatewayConfigOf } from "../tenants/file.js";

void main(
  process.argv.slice(2),
  { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) },
  gatewayConfigOf,
).then((code) => {
  process.exitCode = code;
});
