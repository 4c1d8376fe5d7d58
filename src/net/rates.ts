/**
 * Rates and sizes in tc's units (case-insensitive, so tc's own output "3333Kbit" reads too), so a
 * gateway file reads like the tc commands operators know:
 * "10mbit" is 10,000,000 bits/s, "1gbit", "500kbit", "1mibit" (IEC), "2mbps" is 2 megaBYTES/s.
 * A bare number is refused: tc reads it as bytes/s, people usually mean bits.
 */

const RATE: Record<string, number> = {
  bit: 1,
  kbit: 1e3,
  mbit: 1e6,
  gbit: 1e9,
  tbit: 1e12,
  kibit: 1024,
  mibit: 1024 ** 2,
  gibit: 1024 ** 3,
  tibit: 1024 ** 4,
  bps: 8,
  kbps: 8e3,
  mbps: 8e6,
  gbps: 8e9,
  tbps: 8e12,
};

const SIZE: Record<string, number> = {
  b: 1,
  k: 1024,
  kb: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  kbit: 128,
  mbit: 131072,
};

function parseUnit(text: string, units: Record<string, number>): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]+)$/.exec(text.trim());
  const unit = m ? units[m[2]!.toLowerCase()] : undefined;
  return m && unit !== undefined ? Math.round(Number(m[1]) * unit) : undefined;
}

/** Bits per second, or undefined if `text` is not a rate with a tc unit. */
export function parseRate(text: string): number | undefined {
  const v = parseUnit(text, RATE);
  return v !== undefined && v > 0 ? v : undefined;
}

/** Bytes, or undefined if `text` is not a size with a tc unit ("15k", "1600b"). */
export function parseSize(text: string): number | undefined {
  const v = parseUnit(text, SIZE);
  return v !== undefined && v > 0 ? v : undefined;
}

/** A rate for people: "10mbit", "1.5gbit", "800kbit". */
export function formatRate(bits: number): string {
  for (const [unit, f] of [
    ["gbit", 1e9],
    ["mbit", 1e6],
    ["kbit", 1e3],
  ] as const) {
    if (bits >= f) return `${Number((bits / f).toFixed(2))}${unit}`;
  }
  return `${Math.round(bits)}bit`;
}
