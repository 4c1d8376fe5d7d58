/**
 * The node installer: the long-running container of the DaemonSet that puts tenant-egress on a
 * node and keeps it there. A chained plugin cannot be installed once (by an init container):
 * primary CNIs rewrite their own conflist on restarts and reboots, dropping every entry they did
 * not write, so the installer watches the configuration directory and the tenants file and
 * reconciles the node's config against them — the same idea as everything else here, applied to
 * files: desired (the primary's conflist ending with our entry), observed (the directory), the
 * difference written atomically, nothing written when there is none (so no write loops).
 *
 * Uninstalling is explicit, never a side effect of SIGTERM (an upgrade stops the old pod): our
 * entry goes first, then the node-side state no DEL will ever reach — the runtime runs DEL with
 * the configuration as loaded now, so pods created before have lost their DEL — is collected by
 * running our own plugin's GC with no valid attachment. The binary stays: runtimes that cache
 * the configuration (libcni's cache: podman, cnitool) still call it on DEL.
 */
import { createHash } from "node:crypto";
import { createReadStream, type FSWatcher, watch } from "node:fs";
import { chmod, chown, copyFile, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { basename, dirname, join } from "node:path";
import { run } from "../net/run.js";
import { parseTenantsFile, pluginEntry } from "../tenants/file.js";
import { type ConfFile, choosePrimary, isConfName, OUR_TYPE, parseConfFile, planChain } from "./conflist.js";

export interface InstallerOptions {
  binDir: string;
  confDir: string;
  /** CNI_CONF_NAME: the file to chain into; otherwise the runtime's own choice. */
  confName?: string;
  tenantsFile: string;
  /** The plugin executable to install. */
  pluginSource: string;
  readyFile?: string;
  /** ADDR:PORT for /healthz and /readyz. */
  listen?: string;
  resyncMs: number;
  log: (line: string) => void;
}

export interface InstallerState {
  ready: boolean;
  /** Why not ready, or the last problem seen (an invalid tenants file keeps the last good entry). */
  problems: string[];
  primary?: string;
  changes: number;
}

/** Temp names libcni never reads: hidden, and no .conf/.conflist/.json ending. */
const tempName = (dir: string, what: string) => join(dir, `.${what}.tenant-egress-${process.pid}.tmp`);

async function sha256(path: string): Promise<string | undefined> {
  try {
    const hash = createHash("sha256");
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    return hash.digest("hex");
  } catch {
    return undefined;
  }
}

/**
 * Copies the plugin into the bin dir as a runtime could never see it half-written: a temp file
 * in the same directory, chmod, rename over the old one (copying over a binary a runtime is
 * executing fails with "text file busy"; a rename replaces the directory entry only).
 */
export async function installBinary(source: string, binDir: string, known?: { id: string }): Promise<boolean> {
  const target = join(binDir, OUR_TYPE);
  // Hashing ~127 MB on every pass would be the installer's whole cost: re-hash only when the
  // installed file is not the one this installer last saw.
  const seen = await stat(target).then(
    (s) => `${s.ino}:${s.size}:${s.mtimeMs}`,
    () => "",
  );
  if (known && seen && known.id === seen) return false;
  const same = (await sha256(source)) === (await sha256(target));
  if (!same) {
    const tmp = tempName(binDir, OUR_TYPE);
    await copyFile(source, tmp);
    await chmod(tmp, 0o755);
    await rename(tmp, target);
  }
  if (known) known.id = await stat(target).then((s) => `${s.ino}:${s.size}:${s.mtimeMs}`);
  return !same;
}

async function readConfDir(dir: string): Promise<ConfFile[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const files: ConfFile[] = [];
  for (const name of names.filter(isConfName)) {
    const text = await readFile(join(dir, name), "utf8").catch(() => undefined);
    if (text !== undefined) files.push({ name, text });
  }
  return files;
}

/** Writes a config file atomically, with the mode and owner of the file it replaces. */
async function writeConf(dir: string, f: ConfFile, like: string): Promise<void> {
  const old = await stat(join(dir, like)).catch(() => undefined);
  const tmp = tempName(dir, "conflist");
  await writeFile(tmp, f.text, { mode: old ? old.mode & 0o777 : 0o644 });
  if (old) {
    await chmod(tmp, old.mode & 0o777);
    await chown(tmp, old.uid, old.gid);
  }
  await rename(tmp, join(dir, f.name));
}

export class Installer {
  readonly state: InstallerState = { ready: false, problems: [], changes: 0 };
  private entry?: Record<string, unknown>;
  private entryError?: string;
  private watchers: FSWatcher[] = [];
  private timer?: NodeJS.Timeout;
  private pending?: NodeJS.Timeout;
  private running = Promise.resolve();
  private server?: Server;
  private readonly installed = { id: "" };

  constructor(private readonly o: InstallerOptions) {}

  /** Reads the tenants file; an invalid one keeps the last good entry. */
  private async loadEntry(): Promise<void> {
    try {
      const next = pluginEntry(parseTenantsFile(JSON.parse(await readFile(this.o.tenantsFile, "utf8"))));
      if (this.entryError) this.o.log(`tenants file ${this.o.tenantsFile} is valid again`);
      this.entryError = undefined;
      this.entry = next;
    } catch (e) {
      const why = `tenants file ${this.o.tenantsFile}: ${(e as Error).message}`;
      if (why !== this.entryError) this.o.log(`${why}${this.entry ? " (keeping the last good entry)" : ""}`);
      this.entryError = why;
    }
  }

  /** One pass: tenants file, binary, config; serialised, so events never race each other. */
  reconcile(): Promise<void> {
    this.running = this.running
      .then(() => this.pass())
      .catch((e: Error) => this.o.log(`reconcile failed: ${e.message}`));
    return this.running;
  }

  private async pass(): Promise<void> {
    const problems: string[] = [];
    await this.loadEntry();
    if (this.entryError) problems.push(this.entryError);
    if (await installBinary(this.o.pluginSource, this.o.binDir, this.installed))
      this.o.log(`installed ${join(this.o.binDir, OUR_TYPE)} from ${this.o.pluginSource}`);
    const choice = choosePrimary(await readConfDir(this.o.confDir), this.o.confName);
    for (const bad of choice.invalid)
      problems.push(`${join(this.o.confDir, bad.name)} is not a valid CNI config (${bad.why}); left untouched`);
    let chained = false;
    if (!choice.primary) {
      problems.push(
        this.o.confName
          ? `waiting for a valid ${join(this.o.confDir, this.o.confName)}`
          : `waiting for the primary CNI's config in ${this.o.confDir}`,
      );
    } else if (this.entry) {
      const plan = planChain(choice.primary, this.entry);
      if (plan.write) {
        await writeConf(this.o.confDir, plan.write, choice.primary.name);
        if (plan.remove) await rm(join(this.o.confDir, plan.remove), { force: true });
        this.state.changes++;
        this.o.log(plan.change!);
      }
      this.state.primary = plan.write?.name ?? choice.primary.name;
      chained = true;
    }
    this.state.problems = problems;
    // Ready once the node chains us; a bad tenants file is reported but does not unchain the node.
    await this.setReady(chained);
  }

  private async setReady(ready: boolean): Promise<void> {
    if (ready !== this.state.ready)
      this.o.log(ready ? `ready: ${join(this.o.confDir, this.state.primary!)} chains tenant-egress` : "not ready");
    this.state.ready = ready;
    if (!this.o.readyFile) return;
    if (ready) await writeFile(this.o.readyFile, "ready\n");
    else await rm(this.o.readyFile, { force: true });
  }

  /** Reconciles now, then on every change to the conf dir or the tenants file, and every resync. */
  async start(): Promise<void> {
    await this.reconcile();
    const soon = () => {
      clearTimeout(this.pending);
      // Editors and ConfigMap updates come as bursts of events; one pass after the burst.
      this.pending = setTimeout(() => void this.reconcile(), 100);
    };
    // The tenants file's directory, not the file: a ConfigMap update swaps a symlink.
    for (const dir of new Set([this.o.confDir, dirname(this.o.tenantsFile)])) this.watchers.push(watch(dir, soon));
    this.timer = setInterval(() => void this.reconcile(), this.o.resyncMs);
    if (this.o.listen) this.server = await serveHealth(this.o.listen, this.state);
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.close();
    clearInterval(this.timer);
    clearTimeout(this.pending);
    await this.running;
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /**
   * Removes our entry from every config in the directory, then collects the node-side state of
   * every attachment (GC with no valid attachment). The plugin binary stays.
   */
  async uninstall(): Promise<void> {
    await this.loadEntry();
    let network: string | undefined;
    for (const f of await readConfDir(this.o.confDir)) {
      const p = parseConfFile(f);
      if (!p.ok) continue;
      const plan = planChain(p, undefined);
      if (plan.write) {
        await writeConf(this.o.confDir, plan.write, p.name);
        this.o.log(plan.change!);
        network ??= typeof p.list.name === "string" ? p.list.name : undefined;
      }
    }
    await this.setReady(false);
    const plugin = join(this.o.binDir, OUR_TYPE);
    const conf = {
      cniVersion: "1.1.0",
      name: network ?? "tenant-egress-uninstall",
      ...(this.entry ?? { type: OUR_TYPE }),
      "cni.dev/valid-attachments": [],
    };
    const r = await run([plugin], {
      env: { PATH: process.env.PATH, CNI_COMMAND: "GC", CNI_PATH: this.o.binDir },
      input: JSON.stringify(conf),
      allowFailure: true,
    });
    if (r.exitCode !== 0) throw new Error(`${plugin} GC failed: ${r.stdout.trim() || r.stderr.trim()}`);
    this.o.log(
      `collected the node-side state of every attachment (${basename(plugin)} GC); ${plugin} stays for runtimes that cached the old config`,
    );
  }
}

function serveHealth(listen: string, state: InstallerState): Promise<Server> {
  const at = /^(.*):(\d+)$/.exec(listen);
  if (!at) throw new Error(`--listen takes ADDR:PORT, not "${listen}"`);
  const server = createServer((req, res) => {
    const ok = req.url === "/healthz" || (req.url === "/readyz" && state.ready);
    res.writeHead(req.url === "/healthz" || req.url === "/readyz" ? (ok ? 200 : 503) : 404, {
      "content-type": "application/json",
    });
    res.end(`${JSON.stringify(state)}\n`);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(Number(at[2]), at[1] || undefined, () => resolve(server));
  });
}
