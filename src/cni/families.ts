/**
 * Whether an invocation may find IPv6 state of the attachment, answered from the raw network
 * configuration before any validator is loaded: the plugin's main decides with it which
 * observing processes to start, and IPv4-only pods (most of them) then start two fewer. ADD
 * writes IPv6 state only for a pod whose prevResult has an IPv6 address, and the runtime passes
 * the same prevResult to CHECK and DEL; a DEL without one (or with one that is not an object)
 * may be of a dual-stack pod, so it reads both families. Over-answering costs two processes,
 * never correctness; the verbs also look again with IPv6 if the tunnel turns out to hold an
 * IPv6 address (commands.ts).
 */
export function mayHoldIpv6(prevResult: unknown): boolean {
  if (typeof prevResult !== "object" || prevResult === null) return true;
  const ips = (prevResult as { ips?: unknown }).ips;
  if (!Array.isArray(ips)) return true;
  return ips.some((x) => {
    const address = (x as { address?: unknown } | null)?.address;
    return typeof address !== "string" || address.includes(":");
  });
}
