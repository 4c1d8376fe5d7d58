// Bundles each executable into one self-contained file under dist/. A CNI plugin runs once per
// pod operation, so start-up time is the plugin's latency: one bundled file loads in a fraction
// of the time node_modules resolution takes, and needs no node_modules at run time.
// The shebang drops Node variables that slow start-up (NODE_OPTIONS can load code,
// NODE_EXTRA_CA_CERTS parses certificates) — a plugin inherits whatever the runtime's env holds.
import { build } from "esbuild";
import { chmod, mkdir, writeFile } from "node:fs/promises";

const executables = {
  "tenant-egress": "src/bin/tenant-egress.ts",
  "tenant-egress-gateway": "src/bin/tenant-egress-gateway.ts",
  "tenant-egress-lab": "src/bin/tenant-egress-lab.ts",
};

const shebang = "#!/usr/bin/env -S -u NODE_OPTIONS -u NODE_EXTRA_CA_CERTS node";

// Inside this repository ("type": "module") Node would read the bundles as ES modules; this
// marks dist/ as CommonJS, which is also how an installed copy with no package.json is read.
await mkdir("dist", { recursive: true });
await writeFile("dist/package.json", '{ "type": "commonjs" }\n');

await Promise.all(
  Object.entries(executables).map(async ([name, entry]) => {
    const outfile = `dist/${name}`;
    await build({
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: "node",
      target: "node20",
      // CommonJS: an installed plugin has no package.json beside it, and Node 20 reads an
      // extensionless file without one as CommonJS.
      format: "cjs",
      minify: true,
      legalComments: "none",
      banner: { js: shebang },
      logLevel: "warning",
    });
    await chmod(outfile, 0o755);
  }),
);
