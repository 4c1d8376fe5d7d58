/**
 * Split brain: both instances active at once. VRRP settles it by itself while the two hear each
 * other's advertisements; when that path is cut and nothing else is (a firewall dropping VRRP, a
 * switch fault between their ports), both become MASTER, both hold and announce the addresses,
 * and the segment follows whichever announced last. The sync link is a second path between the
 * two daemons, and each says on it whether it is active and for how long: when both are and
 * neither has heard the other's advertisements since it became active, the one that became
 * active later gives the role up. The incumbent keeps it because its flows and NAT bindings are where they are
 * (the same reason as no preemption); the later one yields by marking itself faulty in a file
 * keepalived tracks, which keeps it out of the election. It comes back as a candidate as soon as
 * VRRP's path is back (an advertisement of the peer is heard), the peer stops being active, or
 * the peer's daemon falls silent (it died: this instance is the one left to take over). A pair
 * cut on both paths cannot tell a dead peer from an unreachable one; both stay active until a
 * path heals, which is why the sync link must not share the uplink's path.
 */

export interface Contender {
  name: string;
  priority: number;
  activeForMs: number;
}

/** Closer than this, two instances became active together and activity cannot rank them. */
const TIE_MS = 50;

/**
 * Whether `self` gives the role to `peer`, both active: the later one yields; a tie goes to the
 * higher priority, then to the lower name. Both sides compute the same answer from the same facts.
 */
export function shouldYield(self: Contender, peer: Contender): boolean {
  const d = self.activeForMs - peer.activeForMs;
  if (Math.abs(d) > TIE_MS) return d < 0;
  if (self.priority !== peer.priority) return self.priority < peer.priority;
  return self.name > peer.name;
}

/**
 * Whether VRRP's own path works, as far as this instance can tell: an advertisement of the peer
 * was heard in the last `windowMs` and after `sinceMs` (epoch ms; when this instance became
 * active: what it heard before is what made it a candidate, or is stale).
 */
export function vrrpPathWorks(lastAdvertMs: number | undefined, sinceMs: number, nowMs: number, windowMs: number) {
  return lastAdvertMs !== undefined && lastAdvertMs > Math.max(sinceMs, nowMs - windowMs);
}
