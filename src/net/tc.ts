/**
 * Traffic control read back into the desired-state vocabulary (rendering is the qdisc and
 * class descriptors' in kinds.ts). iproute2 prints qdiscs as JSON but HTB classes only as
 * text (with rates rounded for people, "3333Kbit"), so classes are parsed from `tc -d -s class
 * show` and compared with a tolerance (see kinds.ts' closeTo).
 */
import type { Qdisc, TcClass } from "./objects.js";
import { parseRate } from "./rates.js";
import { oneShot, type Readers } from "./readers.js";
import { run } from "./run.js";

/** Parses a rate as tc prints it ("3333Kbit", "1Gbit", "800bit"; 0 for "0bit") into bits/s. */
export function parseTcRate(text: string): number {
  if (/^0(\.0+)?[A-Za-z]+$/.test(text)) return 0;
  const bits = parseRate(text);
  if (bits === undefined) throw new Error(`unexpected rate "${text}" from tc`);
  return bits;
}

function parseBytes(text: string): number {
  const m = /^(\d+)(?:b|$|\/)/.exec(text);
  if (!m) throw new Error(`unexpected size "${text}" from tc`);
  return Number(m[1]);
}

export interface ClassStats {
  classid: string;
  bytes: number;
  packets: number;
  drops: number;
  overlimits: number;
  backlogBytes: number;
  backlogPackets: number;
}

/** Parses `tc -d -s class show dev X` output: HTB classes with their settings and counters. */
export function parseClasses(dev: string, text: string): Array<{ cls: TcClass; stats: ClassStats }> {
  const out: Array<{ cls: TcClass; stats: ClassStats }> = [];
  for (const block of text.split(/\n(?=class )/)) {
    const head = /^class htb (\S+) (?:root|parent (\S+))/.exec(block);
    if (!head) continue;
    const field = (name: string) => new RegExp(`\\b${name} (\\S+)`).exec(block)?.[1];
    const classid = head[1]!;
    const sent = /Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)/.exec(block);
    const backlog = /backlog (\d+)b (\d+)p/.exec(block);
    out.push({
      cls: {
        dev,
        classid,
        parent: head[2] ?? `${classid.split(":")[0]}:`,
        rate: parseTcRate(field("rate") ?? "0bit"),
        ceil: parseTcRate(field("ceil") ?? "0bit"),
        burst: parseBytes(field("burst") ?? "0b"),
        cburst: parseBytes(field("cburst") ?? "0b"),
        quantum: Number(field("quantum") ?? 0),
      },
      stats: {
        classid,
        bytes: Number(sent?.[1] ?? 0),
        packets: Number(sent?.[2] ?? 0),
        drops: Number(sent?.[3] ?? 0),
        overlimits: Number(sent?.[4] ?? 0),
        backlogBytes: Number(backlog?.[1] ?? 0),
        backlogPackets: Number(backlog?.[2] ?? 0),
      },
    });
  }
  return out;
}

interface TcQdiscJson {
  kind: string;
  handle: string;
  dev: string;
  root?: boolean;
  parent?: string;
  options?: { default?: string; rate?: number; burst?: string; direct_packets_stat?: number };
}

export interface ObservedQdisc extends Qdisc {
  directPackets?: number;
}

/** Parses `tc -json qdisc show` (all devices). */
export function parseQdiscs(json: string): ObservedQdisc[] {
  const list = (json.trim() ? JSON.parse(json) : []) as TcQdiscJson[];
  return list
    .filter((q) => q.kind === "htb" || q.kind === "tbf" || q.kind === "fq_codel" || q.kind === "sfq")
    .map((q) => ({
      dev: q.dev,
      parent: q.root ? "root" : (q.parent ?? ""),
      handle: q.handle,
      kind: q.kind as Qdisc["kind"],
      ...(q.kind === "htb"
        ? { defaultClass: Number(q.options?.default ?? 0), directPackets: q.options?.direct_packets_stat ?? 0 }
        : {}),
      ...(q.kind === "tbf" ? { rate: q.options?.rate ?? 0, burst: parseBytes(q.options?.burst ?? "0b") } : {}),
    }));
}

export interface TcObservation {
  qdiscs: ObservedQdisc[];
  classes: TcClass[];
  stats: Map<string, ClassStats[]>;
}

/** Reads the qdiscs of every device (as a batch: a daemon's kept `tc -json` answers it). */
export async function observeQdiscs(
  netns: string | undefined,
  readers: Readers = oneShot(netns),
): Promise<ObservedQdisc[]> {
  return parseQdiscs(await readers.ask(["tc", "-json", "-batch", "-"], "qdisc show\n"));
}

/**
 * Reads the classes (with counters) of the devices given in one `tc -batch`, whatever their
 * number: a gateway has a tunnel device per tenant, and a process per device made every
 * reconcile and scrape grow with the tenants. `class show` does not print its device, so each
 * device's classes are preceded by its `qdisc show`, which lists the device's root qdisc first
 * (every device has one, `noqueue` at least): each `root` qdisc line begins the next device.
 */
export async function observeClasses(
  netns: string | undefined,
  devices: readonly string[],
): Promise<Omit<TcObservation, "qdiscs">> {
  const stats = new Map<string, ClassStats[]>();
  const classes: TcClass[] = [];
  if (!devices.length) return { classes, stats };
  const input = devices.map((d) => `qdisc show dev ${d}\nclass show dev ${d}\n`).join("");
  const out = (await run(["tc", "-d", "-s", "-batch", "-"], { netns, input })).stdout;
  const text = devices.map((): string[] => []);
  let at = -1;
  for (const line of out.split("\n")) {
    // A qdisc's own statistics lines land before the device's first class, where no class block begins.
    if (/^qdisc \S+ \S+ root /.test(line)) at++;
    else text[at]?.push(line);
  }
  if (at !== devices.length - 1)
    throw new Error(`unexpected output from tc -batch: ${at + 1} root qdiscs for ${devices.length} devices`);
  devices.forEach((dev, i) => {
    const parsed = parseClasses(dev, text[i]!.join("\n"));
    classes.push(...parsed.map((p) => p.cls));
    stats.set(
      dev,
      parsed.map((p) => p.stats),
    );
  });
  return { classes, stats };
}

/** Reads the classes of devices known only later: started now, given the devices once known. */
export type ClassReading = (devices: readonly string[]) => Promise<Omit<TcObservation, "qdiscs">>;

/**
 * For readings that learn the devices (a gateway's uplink and tunnels) from another process
 * running at the same time: each reading starts by asking for the devices the previous one
 * ended with, so the class counters are read in parallel with the rest, and reads them once
 * more when the devices turn out to differ (a tenant came or went, or this is the first
 * reading). The classes are text, not one line a command, so this is a new `tc` each time.
 */
export function classReader(netns: string | undefined): () => ClassReading {
  let known: string[] = [];
  return () => {
    const guessed = known;
    // A device that has gone since makes tc fail: the devices given later tell which ones are there.
    const guess = guessed.length ? observeClasses(netns, guessed).catch(() => undefined) : undefined;
    return async (devices) => {
      known = [...devices];
      const early = await guess;
      return early && guessed.join() === devices.join() ? early : observeClasses(netns, devices);
    };
  };
}
