/**
 * A pure function of a string, remembered: a daemon recomputes the same few hundred values from
 * the same text on every reconcile (canonical rule forms, parsed subnets), and in V8's lite mode
 * that was a large part of a no-op reconcile. Bounded, so text that keeps changing cannot grow
 * it for ever: when full it starts again empty.
 */
export function memoByText<T>(fn: (text: string) => T, limit = 20_000): (text: string) => T {
  const known = new Map<string, T>();
  return (text) => {
    if (known.has(text)) return known.get(text) as T;
    if (known.size >= limit) known.clear();
    const value = fn(text);
    known.set(text, value);
    return value;
  };
}
