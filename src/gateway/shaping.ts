/**
 * How a rate becomes HTB and leaf-queue parameters, so that a limit means what it says:
 * - burst/cburst ≈ 1 ms of bytes at the rate, never below one full frame;
 * - quantum ≈ 10 ms of bytes (so excess bandwidth is lent in proportion to rates), within
 *   HTB's sane range, set explicitly so the kernel never warns about r2q;
 * - the leaf queue is sized in time, not packets: at most ~12 ms of the class's guaranteed
 *   rate waits in it, so latency under load stays bounded at 10 Mbit/s and throughput is
 *   full at 1 Gbit/s.
 * The leaf is fq_codel or sfq where the kernel has them. Where it has neither, a tbf far above
 * the class rate with a bucket smaller than a GSO super-packet: tbf then segments GSO packets
 * into frames, so a small time-based limit holds whole frames instead of dropping 64 KB
 * super-packets (DESIGN.md §4: a small byte FIFO collapsed 100 Mbit/s to 35).
 */
import type { Qdisc, TcClass } from "../net/desired-state.js";
import type { LeafKind } from "../net/probe.js";

/** An Ethernet frame at MTU 1500. */
export const FRAME = 1514;
const MIN_BURST = 1600;
const MAX_QUANTUM = 200_000;
/** Target queueing delay of a leaf at its class's guaranteed rate. */
export const LEAF_DELAY_S = 0.012;

export function htbClass(
  dev: string,
  classid: string,
  parent: string,
  rate: number,
  ceil: number,
  burst?: number,
): TcClass {
  const bytesPerMs = (bits: number) => Math.ceil(bits / 8 / 1000);
  return {
    dev,
    classid,
    parent,
    rate,
    ceil,
    burst: burst ?? Math.max(MIN_BURST, bytesPerMs(rate)),
    cburst: Math.max(burst ?? 0, MIN_BURST, bytesPerMs(ceil)),
    quantum: Math.min(MAX_QUANTUM, Math.max(FRAME, Math.round(rate / 8 / 100))),
  };
}

/** The leaf qdisc under an HTB class, sized to the class's rate. */
export function leafQdisc(kind: LeafKind, cls: TcClass): Qdisc {
  const minor = cls.classid.split(":")[1]!;
  const base = { dev: cls.dev, parent: cls.classid, handle: `${minor}:` };
  if (kind !== "tbf") return { ...base, kind };
  return {
    ...base,
    kind,
    // Bytes/s, ten times the ceiling: tbf only segments and bounds the queue; HTB shapes.
    rate: Math.round((cls.ceil * 10) / 8),
    burst: 2 * FRAME,
    limit: Math.max(8 * FRAME, Math.round((cls.rate / 8) * LEAF_DELAY_S)),
  };
}
