/**
 * tenant-egress-install: the node installer (the DaemonSet's long-running container). Thin main:
 * flags and signals; the work is in install/installer.
 */
import { writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { Installer } from "../install/installer.js";

const USAGE = `Usage: tenant-egress-install [options]            install, then keep the node chained (until SIGTERM)
       tenant-egress-install --uninstall [options]  remove our entry and every attachment's node-side state

  --bin-dir DIR      the host's CNI bin dir               (default /host/opt/cni/bin)
  --conf-dir DIR     the host's CNI config dir            (default /host/etc/cni/net.d)
  --tenants FILE     the tenants file (a mounted ConfigMap) (default /etc/tenant-egress/tenants.json)
  --plugin FILE      the plugin executable to install     (default: tenant-egress beside this one)
  --ready-file FILE  exists while the node chains tenant-egress
  --listen ADDR:PORT /healthz and /readyz
  --resync SECONDS   full pass at least this often        (default 30)
  --once             one pass, then exit (0 when the node chains tenant-egress)
  --wait             with --uninstall: then wait for SIGTERM (a DaemonSet must not restart it);
                     --ready-file then says "uninstalled"
Environment: CNI_CONF_NAME names the config to chain into (default: the one the runtime loads).
SIGTERM and SIGINT leave the node as it is: an upgrade must not unchain it.`;

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      "bin-dir": { type: "string", default: "/host/opt/cni/bin" },
      "conf-dir": { type: "string", default: "/host/etc/cni/net.d" },
      tenants: { type: "string", default: "/etc/tenant-egress/tenants.json" },
      plugin: { type: "string" },
      "ready-file": { type: "string" },
      listen: { type: "string" },
      resync: { type: "string", default: "30" },
      once: { type: "boolean" },
      uninstall: { type: "boolean" },
      wait: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const resync = Number(values.resync);
  if (!(resync >= 1 && resync <= 3600)) throw new Error("--resync takes 1 to 3600 seconds");
  const installer = new Installer({
    binDir: values["bin-dir"],
    confDir: values["conf-dir"],
    ...(process.env.CNI_CONF_NAME ? { confName: process.env.CNI_CONF_NAME } : {}),
    tenantsFile: values.tenants,
    pluginSource: values.plugin ?? join(dirname(process.execPath), "tenant-egress"),
    ...(values["ready-file"] ? { readyFile: values["ready-file"] } : {}),
    ...(values.listen ? { listen: values.listen } : {}),
    resyncMs: resync * 1000,
    log: (line) => process.stderr.write(`${new Date().toISOString()} tenant-egress-install: ${line}\n`),
  });
  const signalled = () =>
    new Promise<void>((resolve) => {
      for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => resolve());
    });
  if (values.uninstall) {
    await installer.uninstall();
    if (values.wait) {
      if (values["ready-file"]) await writeFile(values["ready-file"], "uninstalled\n");
      await signalled();
    }
    return 0;
  }
  if (values.once) {
    await installer.reconcile();
    for (const p of installer.state.problems) process.stderr.write(`tenant-egress-install: ${p}\n`);
    return installer.state.ready ? 0 : 1;
  }
  await installer.start();
  await signalled();
  await installer.stop();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: Error) => {
    process.stderr.write(`tenant-egress-install: ${e.message}\n${USAGE}\n`);
    process.exitCode = 2;
  },
);
