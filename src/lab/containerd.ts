/**
 * Debian's containerd, running inside a lab node's network namespace as a Kubernetes node's
 * container runtime, so that its CRI plugin — not a test — runs the CNI chain on pod creation
 * and deletion (DESIGN.md §7.1 says what that takes in this sandbox). Everything it owns is in
 * the lab's scratch directory: its own root, state, socket and config.toml, a shim root, and
 * the pod netns mounts (netns_mounts_under_state_dir). It starts with a clean environment (the
 * CNI plugins inherit containerd's), inside the private mount namespace `ip netns exec` gives it,
 * where the cgroup filesystem is mounted again (ip hides it when it remounts /sys: v1 hierarchies
 * only, as crun refuses hybrid mode), and runs sandboxes with `crun --cgroup-manager=disabled`,
 * which creates no cgroup at all.
 *
 * Stopping it removes the sandboxes still there through CRI (so the CNI DELs run), ends
 * containerd by PID, then any shim of it still running (in its mount namespace, naming its
 * socket) and their children (sandbox processes), and the two things containerd 1.6 keeps
 * outside its dirs: the shim sockets under /run/containerd/s and libcni's result cache under
 * /var/lib/cni/results.
 */
import { createHash } from "node:crypto";
import { chmod, mkdir, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { run } from "../net/run.js";
import { CriClient } from "./cri.js";
import { type Background, startIn } from "./process.js";

export const SANDBOX_IMAGE = "localhost/tenant-egress/pause:1";
const CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** Hard-coded in containerd 1.6 (shim sockets: sha256 of address/namespace/id) and go-cni. */
const SHIM_SOCKETS = "/run/containerd/s";
const CNI_RESULTS = "/var/lib/cni/results";
const CRI_NAMESPACE = "k8s.io";

export interface ContainerdOptions {
  /** The lab node namespace containerd (and so every CNI plugin) runs in. */
  ns: string;
  /** A directory of its own (created), under the lab's scratch dir. */
  dir: string;
  /** CNI bin dir: loopback (CRI always runs it) and every plugin of the chain. */
  cniBinDir: string;
  cniConfDir: string;
}

export interface Containerd {
  cri: CriClient;
  pid: number;
  socket: string;
  /** containerd's log (stderr), for failure messages. */
  log(): Promise<string>;
  /** The pod's network namespace as a path this process can open (it lives in containerd's mount namespace). */
  podNetns(sandboxId: string): Promise<string>;
  /** Its shims and their sandbox processes still running. */
  shims(): Promise<Array<{ pid: number; cmdline: string[] }>>;
  /** Where the shim of sandbox `id` listens (a path containerd 1.6 does not let us choose). */
  shimSocket(id: string): string;
  /** Idempotent, and also after containerd died. */
  stop(): Promise<void>;
}

function configToml(o: ContainerdOptions, d: { root: string; state: string; socket: string; runtime: string }): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = ${JSON.stringify(d.root)}
state = ${JSON.stringify(d.state)}
# Plugins that would write outside our dirs (opt: /opt/containerd) or probe for storage we do not use.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = ${JSON.stringify(d.socket)}

[${cri}]
  # Imported by ctr before the first pod; a present sandbox image is never pulled.
  sandbox_image = ${JSON.stringify(SANDBOX_IMAGE)}
  stream_server_port = "0"
  # No CAP_SYS_RESOURCE here: the sandbox's oomScoreAdj of -998 would fail the start.
  restrict_oom_score_adj = true
  disable_apparmor = true
  # crun --cgroup-manager=disabled creates none; the spec need not name one.
  disable_cgroup = true
  # Pod netns are mounted under our state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  [${cri}.containerd]
    snapshotter = "native"
    default_runtime_name = "crun"
    [${cri}.containerd.runtimes.crun]
      runtime_type = "io.containerd.runc.v2"
      [${cri}.containerd.runtimes.crun.options]
        BinaryName = ${JSON.stringify(d.runtime)}
        Root = ${JSON.stringify(join(d.state, "crun"))}
  # One bin dir for loopback (CRI always runs it) and the chain; only the first conflist loads.
  [${cri}.cni]
    bin_dir = ${JSON.stringify(o.cniBinDir)}
    conf_dir = ${JSON.stringify(o.cniConfDir)}
    max_conf_num = 1
`;
}

/**
 * Mount commands that give the runtime back the cgroup filesystem `ip netns exec` hid: the v1
 * hierarchies this machine has, without the cgroup2 one (crun refuses hybrid mode); on a
 * unified-only machine, cgroup2 itself.
 */
async function cgroupMounts(): Promise<string[]> {
  const lines = (await readFile("/proc/self/mountinfo", "utf8")).split("\n");
  const v1: string[] = [];
  for (const line of lines) {
    const [pre, post] = line.split(" - ");
    const [fstype, , superOptions] = (post ?? "").split(" ");
    const mountPoint = pre?.split(" ")[4] ?? "";
    if (fstype !== "cgroup" || !mountPoint.startsWith("/sys/fs/cgroup/")) continue;
    const opts = superOptions!
      .split(",")
      .filter((x) => x !== "rw" && x !== "ro")
      .join(",");
    v1.push(`mkdir -p ${mountPoint}`, `mount -t cgroup -o ${opts} cgroup ${mountPoint}`);
  }
  return v1.length
    ? ["mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup", ...v1]
    : ["mount -t cgroup2 cgroup2 /sys/fs/cgroup"];
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  log: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline)
      throw new Error(`${what} (${last}); containerd's log ends:\n${(await log()).split("\n").slice(-15).join("\n")}`);
    await sleep(100);
  }
}

/** containerd's shims (in its mount namespace, naming its socket) and their children, the sandbox processes. */
async function shimsOf(mntNs: string, socket: string): Promise<Array<{ pid: number; cmdline: string[] }>> {
  const all: Array<{ pid: number; ppid: number; mnt: string; cmdline: string[] }> = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const [mnt, stat, cmdline] = await Promise.all([
        readlink(`/proc/${name}/ns/mnt`),
        readFile(`/proc/${name}/stat`, "utf8"),
        readFile(`/proc/${name}/cmdline`, "utf8"),
      ]);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      all.push({ pid: Number(name), ppid, mnt, cmdline: cmdline.split("\0").filter(Boolean) });
    } catch {
      // The process ended while we looked.
    }
  }
  const ours = new Set(all.filter((p) => p.mnt === mntNs && p.cmdline.includes(socket)).map((p) => p.pid));
  return all.filter((p) => ours.has(p.pid) || ours.has(p.ppid));
}

/** Waits until these processes have ended (gone or a zombie): a signal is delivered, not awaited. */
async function waitGone(pids: number[]): Promise<void> {
  const alive = async (pid: number) => {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    return stat !== "" && stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  };
  const deadline = Date.now() + 10_000;
  for (let left = pids; left.length; ) {
    left = (await Promise.all(left.map(async (pid) => ((await alive(pid)) ? pid : undefined)))).filter(
      (p) => p !== undefined,
    );
    if (left.length && Date.now() > deadline)
      throw new Error(`processes ${left.join(", ")} of containerd did not end after SIGKILL`);
    if (left.length) await sleep(20);
  }
}

const shimSocket = (address: string, id: string) =>
  join(
    SHIM_SOCKETS,
    createHash("sha256")
      .update(join(address, CRI_NAMESPACE, id))
      .digest("hex"),
  );

/** Removes libcni's cached results of these containers (go-cni's cache dir is not configurable in 1.6). */
async function removeCniResults(ids: Set<string>): Promise<void> {
  for (const name of await readdir(CNI_RESULTS).catch(() => [] as string[])) {
    const cached = await readFile(join(CNI_RESULTS, name), "utf8").then(
      (t) => JSON.parse(t) as { containerId?: string },
      () => ({}) as { containerId?: string },
    );
    if (cached.containerId && ids.has(cached.containerId)) await rm(join(CNI_RESULTS, name), { force: true });
  }
}

/**
 * A local sandbox ("pause") image: an OCI image layout holding one layer (busybox-static as
 * /bin/sleep) whose entrypoint sleeps, written as a tar that `ctr images import` takes. No
 * registry is reachable, and a sandbox image already present is never pulled.
 */
export async function buildSandboxImage(dir: string): Promise<string> {
  const rootfs = join(dir, "rootfs");
  await mkdir(join(rootfs, "bin"), { recursive: true });
  await run(["cp", "/bin/busybox", join(rootfs, "bin/sleep")]);
  const layout = join(dir, "layout");
  const blobs = join(layout, "blobs/sha256");
  await mkdir(blobs, { recursive: true });
  const layerFile = join(dir, "layer.tar");
  await run([
    "tar",
    "--sort=name",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "--mtime=@0",
    "-C",
    rootfs,
    "-cf",
    layerFile,
    ".",
  ]);
  const blob = async (bytes: Buffer, mediaType: string) => {
    const digest = createHash("sha256").update(bytes).digest("hex");
    await writeFile(join(blobs, digest), bytes);
    return { mediaType, digest: `sha256:${digest}`, size: bytes.length };
  };
  const layer = await blob(await readFile(layerFile), "application/vnd.oci.image.layer.v1.tar");
  const config = await blob(
    Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        config: { Entrypoint: ["/bin/sleep", "2147483647"] },
        rootfs: { type: "layers", diff_ids: [layer.digest] },
      }),
    ),
    "application/vnd.oci.image.config.v1+json",
  );
  const manifest = await blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config,
        layers: [layer],
      }),
    ),
    "application/vnd.oci.image.manifest.v1+json",
  );
  const [, tag] = SANDBOX_IMAGE.split(/:(?=[^:/]+$)/);
  await writeFile(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          ...manifest,
          platform: { architecture: "amd64", os: "linux" },
          annotations: { "io.containerd.image.name": SANDBOX_IMAGE, "org.opencontainers.image.ref.name": tag },
        },
      ],
    }),
  );
  const tar = join(dir, "pause.tar");
  await run(["tar", "-C", layout, "-cf", tar, "oci-layout", "index.json", "blobs"]);
  return tar;
}

export async function startContainerd(o: ContainerdOptions): Promise<Containerd> {
  const d = {
    root: join(o.dir, "root"),
    state: join(o.dir, "state"),
    socket: join(o.dir, "containerd.sock"),
    runtime: join(o.dir, "crun"),
  };
  await mkdir(d.root, { recursive: true });
  await mkdir(d.state, { recursive: true });
  // The shim takes a binary, not a command line.
  await writeFile(d.runtime, `#!/bin/sh\nexec crun --cgroup-manager=disabled "$@"\n`);
  await chmod(d.runtime, 0o755);
  const config = join(o.dir, "config.toml");
  await writeFile(config, configToml(o, d));
  const logFile = join(o.dir, "containerd.log");
  const script = [
    ...(await cgroupMounts()),
    `exec env -i PATH=${CLEAN_PATH} containerd --config ${config} 2>>${logFile}`,
  ].join(" && ");
  const daemon: Background = startIn(o.ns, ["sh", "-c", script]);
  const log = () => readFile(logFile, "utf8").catch(() => "");
  const cri = new CriClient(d.socket);
  const pid = daemon.pid!;
  let mntNs: string | undefined;
  const stop = async () => {
    const ids = new Set<string>();
    try {
      for (const s of await cri.listPodSandbox()) {
        ids.add(s.id);
        await cri.stopPodSandbox(s.id).catch(() => {});
        await cri.removePodSandbox(s.id).catch(() => {});
      }
    } catch {
      // containerd is not answering; what it left is collected below.
    }
    cri.close();
    await daemon.stop();
    if (mntNs) {
      const left = await shimsOf(mntNs, d.socket);
      for (const p of left) {
        const id = p.cmdline[p.cmdline.indexOf("-id") + 1];
        if (p.cmdline.includes("-id") && id) ids.add(id);
        try {
          process.kill(p.pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      await waitGone(left.map((p) => p.pid));
    }
    for (const id of ids) await rm(shimSocket(d.socket, id), { force: true });
    await removeCniResults(ids);
  };
  try {
    await waitFor("containerd's CRI did not answer", async () => (await cri.version()).runtimeName, 20_000, log);
    mntNs = await readlink(`/proc/${pid}/ns/mnt`);
    const ctr = await run(
      [
        "ctr",
        "--address",
        d.socket,
        "-n",
        CRI_NAMESPACE,
        "images",
        "import",
        "--snapshotter",
        "native",
        await buildSandboxImage(join(o.dir, "image")),
      ],
      { allowFailure: true },
    );
    if (ctr.exitCode !== 0) throw new Error(`ctr images import failed: ${ctr.stderr.trim()}`);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    cri,
    pid,
    socket: d.socket,
    log,
    async podNetns(id) {
      const { info } = await cri.podSandboxStatus(id);
      const path = info.runtimeSpec?.linux?.namespaces?.find((n) => n.type === "network")?.path;
      if (!path) throw new Error(`sandbox ${id} has no network namespace in its runtime spec`);
      return `/proc/${pid}/root${path}`;
    },
    shims: async () => (mntNs ? shimsOf(mntNs, d.socket) : []),
    shimSocket: (id) => shimSocket(d.socket, id),
    stop,
  };
}
