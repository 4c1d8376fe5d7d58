/**
 * Benchmarks of the plugin as a runtime sees it: wall time of each verb, invoked exactly as
 * libcni invokes one plugin of a chain (env + config on stdin, from the node's namespace),
 * as the single executable and as the plain bundle, with and without the node's enforcement,
 * next to the Go reference chained plugins invoked the same way and to `node -e 0`, the floor
 * of any Node plugin. Then: does ADD slow down with 200 pods on the node, and do 50 parallel
 * ADDs and DELs through the whole chain all succeed and leave nothing behind?
 *
 * The headline figure is each verb's ratio to `node -e 0`: the machine's speed drifts a lot
 * between runs (it is shared), so the floor is sampled in every round, interleaved with the
 * verbs, and each sample is divided by its own round's floor before taking the median.
 */
import { join } from "node:path";
import { run } from "../net/run.js";
import { cni, distDir, type Network, REFERENCE_PLUGINS, writeBridgeConflist } from "./cni-client.js";
import { bridgePorts, leftovers } from "./leftovers.js";
import { pluginEnv } from "./plugin-runner.js";
import type { Lab } from "./topology.js";
import { percentile } from "./traffic.js";

export interface Timing {
  median: number;
  p90: number;
  n: number;
}

/** Each sample divided by the `node -e 0` sampled in the same round (the ratio's median and p90). */
export interface Ratio {
  median: number;
  p90: number;
}

export interface PluginBench {
  verbs: Record<string, Record<string, Timing>>;
  /** Per subject and verb, the ratio to `node -e 0` sampled in the same round. */
  ratios: Record<string, Record<string, Ratio>>;
  nsenterFloor: Timing;
  addWith1: Timing;
  addWith200: Timing;
  ratioWith1: Ratio;
  ratioWith200: Ratio;
  /** The same with `enforce: true`, the 200 pods enforced too (the node's table holds their chains). */
  enforceRatioWith1: Ratio;
  enforceRatioWith200: Ratio;
  /** `node -e 0`, sampled alongside each of the two, to tell the plugin's growth from the machine's. */
  floorWith1: Timing;
  floorWith200: Timing;
  /** Where an ADD's time goes, from the plugin's own trace (TENANT_EGRESS_TRACE=1): each mark's median ms since its process started. */
  addPhases: { marks: Array<{ what: string; ms: number }>; spawns: Array<{ what: string; ms: number }> };
  parallel: {
    pods: number;
    addWallMs: number;
    delWallMs: number;
    addFailures: number;
    delFailures: number;
    leftovers: string[];
  };
}

const timing = (ms: number[]): Timing => ({ median: percentile(ms, 50), p90: percentile(ms, 90), n: ms.length });

function pairedRatio(ms: number[], floor: number[]): Ratio {
  const r = ms.map((x, i) => x / floor[i]!);
  return { median: percentile(r, 50), p90: percentile(r, 90) };
}

async function timed(argv: string[], node: string, env: NodeJS.ProcessEnv, input: string): Promise<number> {
  const start = process.hrtime.bigint();
  const r = await run(argv, { netns: `/run/netns/${node}`, env, input, allowFailure: true });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed: ${r.stdout.trim() || r.stderr.trim()}`);
  return ms;
}

interface Subject {
  name: string;
  /** How a runtime would start it: the executable (or, for the plain bundle, node and the file). */
  argv: string[];
  conf: Record<string, unknown>;
  verbs: Array<"VERSION" | "ADD" | "CHECK" | "DEL">;
  /** Untimed, after DEL: what the plugin's own DEL leaves behind and its next ADD trips over. */
  cleanup?: () => Promise<void>;
}

export async function benchPlugins(
  lab: Lab,
  gatewayIP: string,
  n: number,
  progress: (s: string) => void,
): Promise<PluginBench> {
  const main = await writeBridgeConflist({ name: `${lab.prefix}-bench`, dir: lab.dir });
  const pod = await lab.addPodNamespace("bench-pod");
  const prevResult = JSON.parse(await cni("add", { node: lab.ns.nodeA, network: main, pod })) as unknown;
  const base = { cniVersion: "1.0.0", name: main.name, prevResult };
  const hostVeth = (prevResult as { interfaces: Array<{ name: string; sandbox?: string }> }).interfaces.find(
    (i) => !i.sandbox && i.name !== "cni0",
  )!.name;
  const subjects: Subject[] = [
    {
      name: "tenant-egress",
      argv: [join(distDir(), "tenant-egress")],
      conf: { ...base, type: "tenant-egress", gateway: gatewayIP },
      verbs: ["VERSION", "ADD", "CHECK", "DEL"],
    },
    // The same code as a plain bundle on the machine's node: what the single executable saves.
    {
      name: "tenant-egress (bundle on node)",
      argv: [
        "env",
        "-u",
        "NODE_OPTIONS",
        "-u",
        "NODE_EXTRA_CA_CERTS",
        "node",
        join(distDir(), "bundle", "tenant-egress.cjs"),
      ],
      conf: { ...base, type: "tenant-egress", gateway: gatewayIP },
      verbs: ["VERSION", "ADD", "CHECK", "DEL"],
    },
    // The same with the node's enforcement: what the nftables chain on the host veth costs.
    {
      name: "tenant-egress, enforce",
      argv: [join(distDir(), "tenant-egress")],
      conf: { ...base, type: "tenant-egress", gateway: gatewayIP, enforce: true },
      verbs: ["ADD", "CHECK", "DEL"],
    },
    {
      name: "bandwidth",
      argv: [join(REFERENCE_PLUGINS, "bandwidth")],
      conf: {
        ...base,
        type: "bandwidth",
        ingressRate: 10_000_000,
        ingressBurst: 100_000,
        egressRate: 10_000_000,
        egressBurst: 100_000,
      },
      verbs: ["VERSION", "ADD", "CHECK", "DEL"],
      // Its DEL removes the ifb but leaves the qdiscs on the host veth.
      cleanup: async () => {
        for (const where of ["root", "ingress"])
          await run(["tc", "qdisc", "del", "dev", hostVeth, where], {
            netns: `/run/netns/${lab.ns.nodeA}`,
            allowFailure: true,
          });
      },
    },
    {
      name: "tuning",
      argv: [join(REFERENCE_PLUGINS, "tuning")],
      conf: { ...base, type: "tuning", sysctl: { "net.core.somaxconn": "512" } },
      verbs: ["VERSION", "ADD", "CHECK", "DEL"],
    },
    {
      name: "portmap",
      argv: [join(REFERENCE_PLUGINS, "portmap")],
      conf: {
        ...base,
        type: "portmap",
        snat: true,
        capabilities: { portMappings: true },
        runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: "tcp" }] },
      },
      // Debian's portmap 1.1.1 fails its own CHECK on an IPv4-only node ("could not check ipv6 dnat").
      verbs: ["VERSION", "ADD", "DEL"],
    },
  ];
  const env = (verb: string) =>
    pluginEnv({ CNI_COMMAND: verb, CNI_CONTAINERID: "bench0", CNI_NETNS: `/run/netns/${pod}` });
  // The floor of any Node plugin, started the way ours is (without the variables that slow Node down).
  const nodeStart = () =>
    timed(
      ["env", "-u", "NODE_OPTIONS", "-u", "NODE_EXTRA_CA_CERTS", "node", "-e", "0"],
      lab.ns.nodeA,
      { PATH: process.env.PATH },
      "",
    );
  // The floors of the executables, built into Node 24 the way the plugin is: an empty script,
  // and one session reading the pod's namespace (src/lab/session-floor.ts).
  const floorExe = (name: string, env: NodeJS.ProcessEnv) => () =>
    timed([join(distDir(), "bundle", name)], lab.ns.nodeA, env, "");
  const seaStart = floorExe("empty", { PATH: process.env.PATH });
  const sessionStart = floorExe("session-floor", { PATH: process.env.PATH, CNI_NETNS: `/run/netns/${pod}` });
  const samples: Record<string, Record<string, number[]>> = {};
  const floor: number[] = [];
  const nodeFloor: number[] = [];
  const seaFloor: number[] = [];
  const sessionFloor: number[] = [];
  progress(
    `timing VERSION (start-up), ADD, CHECK and DEL of tenant-egress, bandwidth, tuning and portmap (n=${n} each, interleaved)`,
  );
  for (let i = 0; i < n; i++) {
    nodeFloor.push(await nodeStart());
    seaFloor.push(await seaStart());
    sessionFloor.push(await sessionStart());
    for (const s of subjects) {
      for (const verb of s.verbs) {
        const ms = await timed(s.argv, lab.ns.nodeA, env(verb), JSON.stringify(s.conf));
        const bySubject = samples[s.name] ?? {};
        samples[s.name] = bySubject;
        bySubject[verb] = [...(bySubject[verb] ?? []), ms];
      }
      await s.cleanup?.();
    }
    floor.push(await timed(["true"], lab.ns.nodeA, { PATH: process.env.PATH }, ""));
  }
  const verbs: PluginBench["verbs"] = Object.fromEntries(
    Object.entries(samples).map(([name, v]) => [
      name,
      Object.fromEntries(Object.entries(v).map(([verb, ms]) => [verb, timing(ms)])),
    ]),
  );
  verbs["node -e 0"] = { start: timing(nodeFloor) };
  verbs["empty single executable"] = { start: timing(seaFloor) };
  verbs["one session in the pod"] = { start: timing(sessionFloor) };
  const ratios: PluginBench["ratios"] = Object.fromEntries(
    Object.entries(samples).map(([name, v]) => [
      name,
      Object.fromEntries(Object.entries(v).map(([verb, ms]) => [verb, pairedRatio(ms, nodeFloor)])),
    ]),
  );
  ratios["empty single executable"] = { start: pairedRatio(seaFloor, nodeFloor) };
  ratios["one session in the pod"] = { start: pairedRatio(sessionFloor, nodeFloor) };

  // ADD alone (a DEL between, untimed), plain and enforcing, the floor after each pair.
  const plain = subjects[0]!;
  const enforcing = subjects.find((s) => s.name === "tenant-egress, enforce")!;
  const addOnly = async (count: number) => {
    const ms: number[] = [];
    const enforceMs: number[] = [];
    const floorMs: number[] = [];
    for (let i = 0; i < count; i++) {
      for (const [s, out] of [
        [plain, ms],
        [enforcing, enforceMs],
      ] as const) {
        out.push(await timed(s.argv, lab.ns.nodeA, env("ADD"), JSON.stringify(s.conf)));
        await timed(s.argv, lab.ns.nodeA, env("DEL"), JSON.stringify(s.conf));
      }
      floorMs.push(await nodeStart());
    }
    return {
      add: timing(ms),
      floor: timing(floorMs),
      ratio: pairedRatio(ms, floorMs),
      enforceRatio: pairedRatio(enforceMs, floorMs),
    };
  };
  // Twice the samples: the two medians are compared with each other, so their noise adds up.
  const with1 = await addOnly(2 * n);

  progress(`tracing where an ADD's time goes (n=${n})`);
  const addPhases = await tracedPhases(n, async (verb) => {
    const r = await run(plain.argv, {
      netns: `/run/netns/${lab.ns.nodeA}`,
      env: { ...env(verb), TENANT_EGRESS_TRACE: "1" },
      input: JSON.stringify(plain.conf),
    });
    return r.stderr;
  });

  // Enforcing, so the node's nftables table holds 200 chains when the next ADDs read it.
  progress("attaching 200 pods through the whole chain (enforcing), then timing ADD again");
  const scale = await writeBridgeConflist({
    name: `${lab.prefix}-scale`,
    dir: lab.dir,
    egress: { gateway: gatewayIP, enforce: true },
  });
  const many = await attachMany(lab, scale, "s", 200, 8);
  const with200 = await addOnly(2 * n);
  await detachMany(lab, scale, many, 8);

  progress("50 parallel ADDs, then 50 parallel DELs, through libcni");
  const chain = await writeBridgeConflist({
    name: `${lab.prefix}-parallel`,
    dir: lab.dir,
    egress: { gateway: gatewayIP },
  });
  const parallel = await parallelChain(lab, chain, 50);
  return {
    verbs,
    ratios,
    nsenterFloor: timing(floor),
    addWith1: with1.add,
    addWith200: with200.add,
    ratioWith1: with1.ratio,
    ratioWith200: with200.ratio,
    enforceRatioWith1: with1.enforceRatio,
    enforceRatioWith200: with200.enforceRatio,
    floorWith1: with1.floor,
    floorWith200: with200.floor,
    addPhases,
    parallel,
  };
}

/**
 * The median of each mark the plugin's trace prints for ADD (a DEL between, untimed), in the
 * order they come, and how long starting each process held the plugin's thread (`spawn`).
 */
async function tracedPhases(
  count: number,
  invoke: (verb: "ADD" | "DEL") => Promise<string>,
): Promise<PluginBench["addPhases"]> {
  const marks = new Map<string, number[]>();
  const spawns = new Map<string, number[]>();
  const push = (m: Map<string, number[]>, key: string, ms: number) => m.set(key, [...(m.get(key) ?? []), ms]);
  for (let i = 0; i < count; i++) {
    for (const m of (await invoke("ADD")).matchAll(/^tenant-egress trace ([\d.]+) ms: (.*)$/gm)) {
      const [, at, line] = m as unknown as [string, string, string];
      const spawn = / \(spawn ([\d.]+) ms\)$/.exec(line);
      const what = line.replace(/ \(spawn [\d.]+ ms\)$/, "").replace(/planned \d+ changes/, "planned");
      push(marks, what, Number(at));
      if (spawn) push(spawns, what.replace(/^started /, ""), Number(spawn[1]));
    }
    await invoke("DEL");
  }
  const medians = (m: Map<string, number[]>) => [...m].map(([what, ms]) => ({ what, ms: percentile(ms, 50) }));
  return { marks: medians(marks), spawns: medians(spawns) };
}

async function attachMany(
  lab: Lab,
  network: Network,
  tag: string,
  count: number,
  concurrency: number,
): Promise<string[]> {
  const pods: string[] = [];
  for (let i = 0; i < count; i += concurrency) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(concurrency, count - i) }, (_, j) => lab.addPodNamespace(`${tag}${i + j}`)),
    );
    await Promise.all(batch.map((pod) => cni("add", { node: lab.ns.nodeA, network, pod })));
    pods.push(...batch);
  }
  return pods;
}

async function detachMany(lab: Lab, network: Network, pods: string[], concurrency: number): Promise<void> {
  for (let i = 0; i < pods.length; i += concurrency) {
    await Promise.all(
      pods.slice(i, i + concurrency).map(async (pod) => {
        await cni("del", { node: lab.ns.nodeA, network, pod });
        await run(["ip", "netns", "del", pod]);
      }),
    );
  }
}

async function parallelChain(lab: Lab, network: Network, count: number): Promise<PluginBench["parallel"]> {
  const portsBefore = await bridgePorts(lab);
  const pods = await Promise.all(Array.from({ length: count }, (_, i) => lab.addPodNamespace(`p${i}`)));
  const wall = async (verb: "add" | "del") => {
    const start = Date.now();
    const results = await Promise.allSettled(pods.map((pod) => cni(verb, { node: lab.ns.nodeA, network, pod })));
    return { ms: Date.now() - start, failures: results.filter((r) => r.status === "rejected").length };
  };
  const add = await wall("add");
  const del = await wall("del");
  const left = await leftovers(lab, network, pods, portsBefore);
  return {
    pods: count,
    addWallMs: add.ms,
    delWallMs: del.ms,
    addFailures: add.failures,
    delFailures: del.failures,
    leftovers: left,
  };
}
