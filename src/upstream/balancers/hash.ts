/**
 * Consistent hashing by a request key (client IP, a header, a cookie or the URI), with
 * weighted rendezvous hashing (HRW): each peer scores `-weight / ln(h(key, peer))` and the
 * highest wins. A key stays on its peer while the peer set does not change, and when one of
 * N peers leaves only the keys it had move (about 1/N of them), without a ring to rebuild.
 * With `boundedLoad` c, a peer already carrying more than c times its fair share of the
 * requests in flight is passed over for the key's next choice ("consistent hashing with
 * bounded loads", Mirrokni et al., as HAProxy's `hash-balance-factor`).
 */
import type { Balancer } from "../balancer.js";
import type { Peer } from "../peer.js";

/** FNV-1a over `key`, then `address`, with murmur3's finalizer: a well-mixed 32-bit value. */
function hash32(key: string, address: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ 0xff, 0x01000193);
  for (let i = 0; i < address.length; i++) h = Math.imul(h ^ address.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The weighted rendezvous score of `peer` for `key` (higher wins). */
function score(key: string, peer: Peer): number {
  // In (0, 1): never 0 or 1, so the logarithm is finite and negative.
  const u = (hash32(key, peer.address) + 0.5) / 4294967296;
  return -peer.effectiveWeight / Math.log(u);
}

export class ConsistentHash implements Balancer {
  constructor(private readonly boundedLoad?: number) {}

  pick(peers: readonly Peer[], key = ""): Peer | undefined {
    if (peers.length <= 1) return peers[0];
    if (this.boundedLoad === undefined) {
      let best: Peer | undefined;
      let bestScore = Number.NEGATIVE_INFINITY;
      for (const peer of peers) {
        const s = score(key, peer);
        if (s > bestScore) {
          best = peer;
          bestScore = s;
        }
      }
      return best;
    }
    let inFlight = 0;
    let weights = 0;
    for (const peer of peers) {
      inFlight += peer.inFlight;
      weights += peer.effectiveWeight;
    }
    const ranked = peers.map((peer) => ({ peer, s: score(key, peer) })).sort((a, b) => b.s - a.s);
    for (const { peer } of ranked) {
      // The peer's fair share of the requests in flight, this one included, times c.
      const cap = Math.ceil(((inFlight + 1) * peer.effectiveWeight * this.boundedLoad) / weights);
      if (peer.inFlight + 1 <= cap) return peer;
    }
    return ranked[0]?.peer;
  }
}
