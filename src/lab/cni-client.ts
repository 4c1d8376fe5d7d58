/**
 * Drives the real CNI client (cnitool, built on libcni) inside a lab node, exactly as a runtime
 * would: libcni loads the conflist, runs the chain in order for ADD, in reverse for DEL, caches
 * the result and feeds it to CHECK and DEL as prevResult.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { run } from "../net/run.js";

/** Where Debian's containernetworking-plugins installs the reference plugins. */
export const REFERENCE_PLUGINS = "/usr/lib/cni";

/** dist/ holding the built executables: the bundle's own directory, or the checkout's dist/ when run from source (tests). */
export function distDir(): string {
  return typeof __dirname === "string" && basename(__dirname) === "dist" ? __dirname : resolve("dist");
}

export interface Network {
  name: string;
  /** NETCONFPATH: the directory holding the conflist. */
  confDir: string;
}

export interface BridgeOptions {
  name: string;
  dir: string;
  cniVersion?: string;
  /** The tenant-egress entry (type is added). Omit for a chain without our plugin. */
  egress?: Record<string, unknown>;
  subnet?: string;
  /** Part of the subnet to allocate from (networks sharing one bridge must not hand out the same address). */
  range?: { start: string; end: string };
  /** A second host-local range for IPv6 (dual stack), with a default route; optionally only part of it. */
  ipv6Subnet?: string;
  ipv6Range?: { start: string; end: string };
  /** Capabilities the tenant-egress entry declares (e.g. pod annotations). */
  capabilities?: Record<string, boolean>;
  /** IPv4 routes host-local hands out instead of the default route (a second attachment of a pod). */
  routes?: string[];
}

/** Writes a conflist: bridge + host-local (the main plugin), then tenant-egress. */
export function writeBridgeConflist(o: BridgeOptions): Promise<Network> {
  return writeConflist(o, {
    type: "bridge",
    bridge: "cni0",
    isGateway: true,
    ipMasq: false,
    ipam: hostLocal(o, o.subnet ?? "10.22.0.0/24"),
  });
}

/** Writes a conflist: ptp + host-local (the main plugin), then tenant-egress. */
export function writePtpConflist(o: BridgeOptions): Promise<Network> {
  return writeConflist(o, { type: "ptp", ipMasq: false, ipam: hostLocal(o, o.subnet ?? "10.24.0.0/24") });
}

function hostLocal(o: BridgeOptions, subnet: string) {
  const v4 = { subnet, ...(o.range ? { rangeStart: o.range.start, rangeEnd: o.range.end } : {}) };
  const v6 = {
    subnet: o.ipv6Subnet,
    ...(o.ipv6Range ? { rangeStart: o.ipv6Range.start, rangeEnd: o.ipv6Range.end } : {}),
  };
  const ranges = o.ipv6Subnet ? [[v4], [v6]] : [[v4]];
  const v4Routes = (o.routes ?? ["0.0.0.0/0"]).map((dst) => ({ dst }));
  const routes = o.ipv6Subnet ? [...v4Routes, { dst: "::/0" }] : v4Routes;
  return { type: "host-local", dataDir: join(o.dir, "ipam"), ranges, routes };
}

async function writeConflist(o: BridgeOptions, main: Record<string, unknown>): Promise<Network> {
  const confDir = join(o.dir, `net-${o.name}`);
  await mkdir(confDir, { recursive: true });
  const plugins: unknown[] = [main];
  if (o.egress)
    plugins.push({ type: "tenant-egress", ...(o.capabilities ? { capabilities: o.capabilities } : {}), ...o.egress });
  await writeFile(
    join(confDir, `10-${o.name}.conflist`),
    JSON.stringify({ cniVersion: o.cniVersion ?? "1.0.0", name: o.name, plugins }, null, 2),
  );
  return { name: o.name, confDir };
}

export interface CniCall {
  /** The node namespace the runtime (and so the plugins) runs in. */
  node: string;
  network: Network;
  /** The pod namespace name (under /run/netns). */
  pod: string;
  ifname?: string;
  cniArgs?: string;
  /** Capability args (runtimeConfig), e.g. pod annotations. */
  capabilityArgs?: Record<string, unknown>;
  /** Where plugins are found; default: the reference plugins, then dist/. */
  cniPath?: string;
}

export interface CniOutcome {
  ok: boolean;
  stdout: string;
  stderr: string;
}

export async function cnitool(verb: "add" | "check" | "del", call: CniCall): Promise<CniOutcome> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    NETCONFPATH: call.network.confDir,
    CNI_PATH: call.cniPath ?? `${REFERENCE_PLUGINS}:${distDir()}`,
    CNI_IFNAME: call.ifname ?? "eth0",
    ...(call.cniArgs ? { CNI_ARGS: call.cniArgs } : {}),
    ...(call.capabilityArgs ? { CAP_ARGS: JSON.stringify(call.capabilityArgs) } : {}),
  };
  const r = await run(["cnitool", verb, call.network.name, `/run/netns/${call.pod}`], {
    netns: `/run/netns/${call.node}`,
    env,
    allowFailure: true,
  });
  return { ok: r.exitCode === 0, stdout: r.stdout, stderr: r.stderr };
}

/** Like cnitool(), but throws with cnitool's own words when the chain fails. */
export async function cni(verb: "add" | "check" | "del", call: CniCall): Promise<string> {
  const r = await cnitool(verb, call);
  if (!r.ok)
    throw new Error(`cnitool ${verb} ${call.network.name} ${call.pod} failed: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}
