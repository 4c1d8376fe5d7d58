/**
 * Waiting on the lab: polls a probe until its value is what a test expects, within a bound.
 * Daemons (the installer, containerd) act on their own time; a test asks "within N seconds",
 * and on failure says what it last saw, so a red test names the state, not just a timeout.
 */
import { setTimeout as sleep } from "node:timers/promises";

export async function eventually<T>(
  what: string,
  probe: () => Promise<T>,
  ok: (v: T) => boolean,
  seconds = 2,
): Promise<T> {
  const until = Date.now() + seconds * 1000;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (ok(v)) return v;
      last = v;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > until) throw new Error(`${what}: still ${JSON.stringify(last)} after ${seconds} s`);
    await sleep(50);
  }
}
