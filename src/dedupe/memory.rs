//! [`MemoryStore`]: the embedded, in-process [`DedupeStore`].

use std::{
    fmt,
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hashbrown::HashTable;
use siphasher::sip128::SipHasher13;
use tokio::time::Instant;

use super::{Claim, DedupeStore, StoreFuture, Token};

/// At most this many shards (each a mutex around a map).
const MAX_SHARDS: usize = 64;
/// A shard is given at least this many entries when the capacity allows, so that eviction has a
/// choice.
const MIN_SHARD_ENTRIES: usize = 64;
/// How many entries eviction examines, at most, to find a victim.
const EVICTION_SCAN: usize = 32;

/// The embedded [`DedupeStore`]: bounded, in process memory, with TTL expiry.
///
/// Use it for a single instance; a fleet behind a load balancer needs a shared store
/// (`RedisStore`, feature `redis`). Clones share the same entries (an [`Arc`] inside), so one
/// store can serve several routes.
///
/// # Semantics
///
/// Each key is never seen, *claimed* by one [`Token`] until the claim's in-flight TTL runs out,
/// *released* (its attempt count and first-seen time kept for the release's window) or *done*
/// (kept for the completion's window). [`complete`](DedupeStore::complete) and
/// [`release`](DedupeStore::release) act only for the token that holds a live claim. An expired
/// entry behaves as absent: the next claim is attempt 1. That includes an expired claim (its
/// claimant crashed or hung): its key is claimable again, and its history is forgotten, as in
/// `RedisStore`, so both stores count the same.
///
/// Expiry uses [`tokio::time::Instant`], so a paused test clock is exact; the
/// [`SystemTime`]s in [`Claim`] are the `now` the caller passed (stored to the nanosecond for
/// years 1678 to 2262).
///
/// # Bounds and eviction
///
/// The store never holds more than its capacity ([`MemoryStore::DEFAULT_CAPACITY`] unless
/// set with [`with_capacity`](Self::with_capacity)). There is no sweeper task: an expired entry
/// is overwritten in place when its key comes back, and otherwise stays until its room is
/// needed. The entries are split over up to 64 shards (a [`Mutex`] each, held for one lookup and
/// never across an `.await`), each with an equal share of the capacity, so a shard that draws
/// more keys than its share starts evicting before the whole store is full (filling a store of
/// a million with distinct keys, the first eviction came at 97% and 0.3% of the keys were evicted
/// early).
///
/// When a new key arrives at a full shard, a clock hand that goes round the shard's entries in
/// the order they were stored examines up to 32 of them, from where it last stopped (where the
/// longest-held entries are), and evicts the first expired one. Failing that it evicts, in this order of preference: an entry
/// that only keeps attempt history (released, or an expired claim); the done entry that
/// expires soonest (a later copy of it would be processed again); and last the live in-flight
/// claim that expires soonest. Size the capacity for the deliveries of one dedupe window, so
/// that done entries expire before they are evicted.
///
/// # Memory
///
/// Keys are not stored: each is reduced to a 128-bit keyed hash (SipHash-1-3-128, the rounds
/// Rust's `HashMap` relies on against chosen keys, under a random per-store key), so a key
/// costs no allocation, and two keys collide with a probability of about 2⁻⁸⁹ at a million
/// entries, even keys an attacker picks. An entry is 56 bytes in
/// its shard's slab plus 4 bytes and a control byte in a hash index kept at most 7/8 full.
/// Measured at 1,000,000 entries (26-byte keys like `route:evt_1NqQy2LkdIwHu7ix`), the process
/// grew by **68 bytes per entry**. A full store of the default capacity grew it by 8.4 MB (6.3 MB
/// of entries and index, the rest heap the shards grew out of).
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use webhook_monitor::dedupe::{Claim, DedupeStore, MemoryStore, StoreError, Token};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StoreError> {
/// let store = MemoryStore::with_capacity(10_000);
/// let (ttl, window, now) = (Duration::from_secs(30), Duration::from_secs(3600), SystemTime::now());
///
/// let first = Token::random();
/// let claim = store.claim("orders:evt_1", first, ttl, now).await?;
/// assert!(matches!(claim, Claim::Claimed { attempt: 1, .. }));
///
/// // A copy that arrives meanwhile is in flight.
/// let copy = store.claim("orders:evt_1", Token::random(), ttl, now).await?;
/// assert_eq!(copy, Claim::InFlight { attempts: 1 });
///
/// // The handler succeeded: every later copy is done.
/// assert!(store.complete("orders:evt_1", first, window, now).await?);
/// let retry = store.claim("orders:evt_1", Token::random(), ttl, now).await?;
/// assert_eq!(retry, Claim::Done { attempts: 1, completed_at: now });
/// assert_eq!(store.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Padded]>,
    /// `shards.len() - 1`; the shard count is a power of two.
    shard_mask: u64,
    /// SipHash-1-3-128 under a random secret key.
    hasher: SipHasher13,
    /// Expiry instants are kept as nanoseconds since this instant.
    epoch: Instant,
    capacity: usize,
}

/// One shard, alone on its cache lines so that neighbouring locks do not contend.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// The 128-bit keyed hash a key is stored as. `lo` hashes within a shard, `hi` picks the shard.
#[derive(Clone, Copy, PartialEq, Eq)]
struct KeyHash {
    lo: u64,
    hi: u64,
}

/// An entry's state. The declaration order indexes [`CLASS`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Claimed,
    Released,
    Done,
}

/// One key's entry: 56 bytes.
struct Slot {
    key: KeyHash,
    /// The claim's owner (meaningful while `Claimed`), as two halves to keep the slot 8-aligned.
    token: [u64; 2],
    /// Nanoseconds since the store's epoch when the entry expires.
    expires: u64,
    /// First seen (claimed, released) or completed (done), as nanoseconds since the Unix epoch.
    time: i64,
    attempts: u32,
    state: State,
}

/// A shard: entries in a slab (`slots`, at most `cap`, never removed, only overwritten) and a
/// hash index from key to slot.
struct Shard {
    slots: Vec<Slot>,
    index: HashTable<u32>,
    /// Where the next eviction scan starts.
    hand: usize,
    cap: usize,
}

impl MemoryStore {
    /// The capacity of [`MemoryStore::new`]: 100,000 entries (8.4 MB when full).
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A store of [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) entries.
    ///
    /// ```
    /// use webhook_monitor::dedupe::MemoryStore;
    ///
    /// let store = MemoryStore::new();
    /// assert_eq!(store.capacity(), MemoryStore::DEFAULT_CAPACITY);
    /// assert!(store.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A store that holds at most `max_entries` keys (at least 1).
    ///
    /// Memory grows with use, to about 68 bytes per entry; nothing is allocated up front beyond
    /// 8 KiB of shard headers.
    ///
    /// ```
    /// use webhook_monitor::dedupe::MemoryStore;
    ///
    /// let store = MemoryStore::with_capacity(1_000_000);
    /// assert_eq!(store.capacity(), 1_000_000);
    /// ```
    #[must_use]
    pub fn with_capacity(max_entries: usize) -> Self {
        // Each slab index is a u32.
        let per_shard_max = u32::MAX as usize;
        let capacity = max_entries.clamp(1, per_shard_max.saturating_mul(MAX_SHARDS));
        let wanted = (capacity / MIN_SHARD_ENTRIES).clamp(1, MAX_SHARDS);
        // The largest power of two not above `wanted`.
        let count = 1usize << (usize::BITS - 1 - wanted.leading_zeros());
        let (share, extra) = (capacity / count, capacity % count);
        let shards = (0..count)
            .map(|i| {
                Padded(Mutex::new(Shard {
                    slots: Vec::new(),
                    index: HashTable::new(),
                    hand: 0,
                    cap: share + usize::from(i < extra),
                }))
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                shards,
                shard_mask: count as u64 - 1,
                hasher: random_sip_hasher(),
                epoch: Instant::now(),
                capacity,
            }),
        }
    }

    /// The most keys the store holds.
    ///
    /// ```
    /// use webhook_monitor::dedupe::MemoryStore;
    ///
    /// assert_eq!(MemoryStore::with_capacity(500).capacity(), 500);
    /// ```
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// How many keys the store holds now, expired ones not yet overwritten or evicted included.
    /// Never more than [`capacity`](Self::capacity).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), webhook_monitor::dedupe::StoreError> {
    /// use std::time::{Duration, SystemTime};
    /// use webhook_monitor::dedupe::{DedupeStore, MemoryStore, Token};
    ///
    /// let store = MemoryStore::new();
    /// store.claim("a", Token::random(), Duration::from_secs(30), SystemTime::now()).await?;
    /// assert_eq!(store.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| lock(shard).slots.len())
            .sum()
    }

    /// Whether the store holds no key.
    ///
    /// ```
    /// use webhook_monitor::dedupe::MemoryStore;
    ///
    /// assert!(MemoryStore::new().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key_hash(&self, key: &str) -> KeyHash {
        let hash = self.inner.hasher.hash(key.as_bytes());
        KeyHash {
            lo: hash.h1,
            hi: hash.h2,
        }
    }

    fn shard(&self, key: KeyHash) -> MutexGuard<'_, Shard> {
        // The mask keeps the index below the shard count, so `get` always finds one.
        let index = (key.hi & self.inner.shard_mask) as usize;
        let shard = &self.inner.shards[index % self.inner.shards.len()];
        lock(shard)
    }

    /// Now, as nanoseconds since the store's epoch.
    fn tick(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.inner.epoch))
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("capacity", &self.inner.capacity)
            .field("shards", &self.inner.shards.len())
            .finish()
    }
}

impl DedupeStore for MemoryStore {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        in_flight_ttl: Duration,
        now: SystemTime,
    ) -> StoreFuture<'a, Claim> {
        let key = self.key_hash(key);
        let tick = self.tick();
        let claim = self.shard(key).claim(key, token, tick, in_flight_ttl, now);
        StoreFuture::ready(Ok(claim))
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        window: Duration,
        now: SystemTime,
    ) -> StoreFuture<'a, bool> {
        let key = self.key_hash(key);
        let tick = self.tick();
        let done = self
            .shard(key)
            .finish(key, token, tick, window, State::Done, Some(now));
        StoreFuture::ready(Ok(done))
    }

    fn release<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        window: Duration,
    ) -> StoreFuture<'a, bool> {
        let key = self.key_hash(key);
        let tick = self.tick();
        let released = self
            .shard(key)
            .finish(key, token, tick, window, State::Released, None);
        StoreFuture::ready(Ok(released))
    }

    fn renew<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        in_flight_ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let key = self.key_hash(key);
        let tick = self.tick();
        let renewed = self.shard(key).renew(key, token, tick, in_flight_ttl);
        StoreFuture::ready(Ok(renewed))
    }
}

impl Shard {
    fn find(&self, key: KeyHash) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(key.lo, |&i| {
                slots.get(i as usize).is_some_and(|s| s.key == key)
            })
            .map(|&i| i as usize)
    }

    fn claim(
        &mut self,
        key: KeyHash,
        token: Token,
        tick: u64,
        ttl: Duration,
        now: SystemTime,
    ) -> Claim {
        let expires = tick.saturating_add(nanos(ttl));
        let token = split(token);
        if let Some(slot) = self.find(key).and_then(|i| self.slots.get_mut(i)) {
            match (slot.state, slot.expires > tick) {
                (State::Claimed, true) => {
                    return Claim::InFlight {
                        attempts: slot.attempts,
                    }
                }
                (State::Done, true) => {
                    return Claim::Done {
                        attempts: slot.attempts,
                        completed_at: from_unix_nanos(slot.time),
                    }
                }
                // Released: the history continues.
                (State::Released, true) => {
                    slot.attempts = slot.attempts.saturating_add(1);
                }
                // Expired, including a claim whose holder crashed or hung: as if never seen, as
                // in `RedisStore`, where the expired key is gone.
                (_, false) => {
                    slot.attempts = 1;
                    slot.time = unix_nanos(now);
                }
            }
            slot.state = State::Claimed;
            slot.token = token;
            slot.expires = expires;
            return Claim::Claimed {
                attempt: slot.attempts,
                first_seen: from_unix_nanos(slot.time),
            };
        }
        self.insert(
            Slot {
                key,
                token,
                expires,
                time: unix_nanos(now),
                attempts: 1,
                state: State::Claimed,
            },
            tick,
        );
        Claim::Claimed {
            attempt: 1,
            first_seen: now,
        }
    }

    /// Moves `key` from a live claim held by `token` to `state` for `window`; `completed_at` is
    /// stored for `Done`, the first-seen time is kept for `Released`.
    fn finish(
        &mut self,
        key: KeyHash,
        token: Token,
        tick: u64,
        window: Duration,
        state: State,
        completed_at: Option<SystemTime>,
    ) -> bool {
        let Some(slot) = self.live_claim(key, token, tick) else {
            return false;
        };
        slot.state = state;
        slot.expires = tick.saturating_add(nanos(window));
        if let Some(at) = completed_at {
            slot.time = unix_nanos(at);
        }
        true
    }

    /// Extends the live claim `token` holds on `key` to `ttl` from `tick`.
    fn renew(&mut self, key: KeyHash, token: Token, tick: u64, ttl: Duration) -> bool {
        let Some(slot) = self.live_claim(key, token, tick) else {
            return false;
        };
        slot.expires = tick.saturating_add(nanos(ttl));
        true
    }

    /// `key`'s slot, if `token` holds a live claim on it.
    fn live_claim(&mut self, key: KeyHash, token: Token, tick: u64) -> Option<&mut Slot> {
        let token = split(token);
        let slot = self.find(key).and_then(|i| self.slots.get_mut(i))?;
        let live = slot.state == State::Claimed && slot.expires > tick && slot.token == token;
        live.then_some(slot)
    }

    /// Adds a slot for a key not in the shard, evicting one if the shard is full.
    fn insert(&mut self, slot: Slot, tick: u64) {
        let hash = slot.key.lo;
        let Self {
            slots,
            index,
            hand,
            cap,
        } = self;
        let at = if slots.len() < *cap {
            if slots.len() == slots.capacity() {
                // Grow by doubling, but never past the shard's share.
                let room = *cap - slots.len();
                slots.reserve_exact(slots.len().max(4).min(room));
            }
            slots.push(slot);
            slots.len() - 1
        } else {
            let victim = victim(slots, *hand, tick);
            *hand = victim + 1;
            let Some(old) = slots.get_mut(victim) else {
                // Unreachable: a full shard has slots and `victim` is one of them.
                return;
            };
            if let Ok(entry) = index.find_entry(old.key.lo, |&i| i as usize == victim) {
                entry.remove();
            }
            *old = slot;
            victim
        };
        // `at` < cap ≤ u32::MAX.
        index.insert_unique(hash, at as u32, |&i| {
            slots.get(i as usize).map_or(0, |s| s.key.lo)
        });
    }
}

/// The largest expiry a rank tells apart (146 years in nanoseconds); later ones rank equal.
const RANK_EXPIRES: u64 = (1 << 62) - 1;

/// Eviction class by state (`Claimed`, `Released`, `Done`) and whether the entry is live.
const CLASS: [[u64; 2]; 3] = [[1, 3], [0, 1], [0, 2]];

impl Slot {
    /// Eviction order, lowest first, as one number: the class in the top two bits (0: expired
    /// history or done; 1: an expired claim, or released history; 2: done; 3: a live claim),
    /// then the expiry. One integer compare per slot keeps the eviction scan cheap.
    #[inline(always)]
    fn rank(&self, tick: u64) -> u64 {
        let live = usize::from(self.expires > tick);
        let class = CLASS[self.state as usize][live];
        class << 62 | self.expires.min(RANK_EXPIRES)
    }
}

/// The slot to evict from a full, non-empty shard: scans up to `EVICTION_SCAN` slots from
/// `hand` (going round to the front of the slab at its end), stops at the first expired one
/// (class 0), otherwise picks the lowest rank.
fn victim(slots: &[Slot], hand: usize, tick: u64) -> usize {
    let start = if hand < slots.len() { hand } else { 0 };
    let (front, back) = slots.split_at(start);
    let back = back.get(..EVICTION_SCAN).unwrap_or(back);
    let front = front.get(..EVICTION_SCAN - back.len()).unwrap_or(front);
    let mut best = (start, u64::MAX);
    for (offset, part) in [(start, back), (0, front)] {
        for (i, slot) in part.iter().enumerate() {
            let rank = slot.rank(tick);
            if rank < best.1 {
                best = (offset + i, rank);
                if rank <= RANK_EXPIRES {
                    return best.0;
                }
            }
        }
    }
    best.0
}

/// A SipHash keyed from the operating system's randomness (through `RandomState`'s seed).
fn random_sip_hasher() -> SipHasher13 {
    let seed = RandomState::new();
    SipHasher13::new_with_keys(seed.hash_one(0u64), seed.hash_one(1u64))
}

fn lock(shard: &Padded) -> MutexGuard<'_, Shard> {
    // A shard is consistent between statements that can panic, so a poisoned lock is usable.
    shard.0.lock().unwrap_or_else(PoisonError::into_inner)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn split(token: Token) -> [u64; 2] {
    let value = token.get();
    [value as u64, (value >> 64) as u64]
}

/// `at` as nanoseconds since the Unix epoch, saturating at about ±292 years.
fn unix_nanos(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

fn from_unix_nanos(nanos: i64) -> SystemTime {
    let offset = Duration::from_nanos(nanos.unsigned_abs());
    let at = if nanos >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    at.unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const TTL: Duration = Duration::from_secs(30);
    const WINDOW: Duration = Duration::from_secs(3600);

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    async fn claim(store: &MemoryStore, key: &str, token: Token, now: SystemTime) -> Claim {
        store.claim(key, token, TTL, now).await.unwrap()
    }

    #[test]
    fn slot_is_56_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 56);
    }

    /// A slab of `n` live claims expiring at 100; `set` changes some of them.
    fn slab(n: usize, set: &[(usize, State, u64)]) -> Vec<Slot> {
        let mut slots: Vec<Slot> = (0..n)
            .map(|i| Slot {
                key: KeyHash {
                    lo: i as u64,
                    hi: 0,
                },
                token: [0; 2],
                expires: 100,
                time: 0,
                attempts: 1,
                state: State::Claimed,
            })
            .collect();
        for &(i, state, expires) in set {
            slots[i].state = state;
            slots[i].expires = expires;
        }
        slots
    }

    #[test]
    fn eviction_prefers_expired_then_history_then_done_then_claims() {
        let tick = 50;
        // An expired done entry beats everything, wherever it is in the scan.
        let slots = slab(40, &[(4, State::Done, 90), (9, State::Done, 10)]);
        assert_eq!(victim(&slots, 0, tick), 9);
        // Released history (live) beats live done entries, which beat live claims.
        let slots = slab(40, &[(2, State::Done, 60), (7, State::Released, 99)]);
        assert_eq!(victim(&slots, 0, tick), 7);
        let slots = slab(40, &[(2, State::Done, 70), (5, State::Done, 60)]);
        assert_eq!(victim(&slots, 0, tick), 5);
        // Expired history beats an expired claim that expired even earlier (its claimant may
        // still be working).
        let slots = slab(40, &[(4, State::Claimed, 5), (9, State::Released, 10)]);
        assert_eq!(victim(&slots, 0, tick), 9);
        // An expired claim ranks with live released history, by expiry.
        let slots = slab(40, &[(3, State::Released, 99), (6, State::Claimed, 20)]);
        assert_eq!(victim(&slots, 0, tick), 6);
        // Among live claims alone, the one that expires soonest.
        let slots = slab(40, &[(8, State::Claimed, 70)]);
        assert_eq!(victim(&slots, 0, tick), 8);
    }

    #[test]
    fn eviction_scans_32_slots_from_the_hand_going_round_the_slab() {
        let tick = 50;
        // From the hand at 35: 35..40, then 0..27 at the front.
        let slots = slab(40, &[(3, State::Done, 10)]);
        assert_eq!(victim(&slots, 35, tick), 3);
        // Slot 27 is the 33rd examined: out of reach, so the first of equals wins.
        let slots = slab(40, &[(27, State::Done, 10)]);
        assert_eq!(victim(&slots, 35, tick), 35);
        // Within reach from the front when the hand is past the end.
        assert_eq!(victim(&slots, 40, tick), 27);
        // A slab smaller than the scan is examined whole, once.
        let slots = slab(5, &[(1, State::Done, 10)]);
        assert_eq!(victim(&slots, 3, tick), 1);
    }

    #[test]
    fn store_is_send_sync_clone_static() {
        fn assert<T: Send + Sync + Clone + 'static>() {}
        assert::<MemoryStore>();
        let store: Arc<dyn DedupeStore> = Arc::new(MemoryStore::new());
        drop(store);
    }

    #[test]
    fn unix_nanos_round_trip() {
        for at in [
            t0() + Duration::from_nanos(123_456_789),
            UNIX_EPOCH,
            UNIX_EPOCH - Duration::from_nanos(1),
            UNIX_EPOCH - Duration::from_secs(86_400 * 365 * 50) - Duration::from_nanos(7),
        ] {
            assert_eq!(from_unix_nanos(unix_nanos(at)), at);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_claim_is_in_flight() {
        let store = MemoryStore::new();
        let first = Token::random();
        assert_eq!(
            claim(&store, "k", first, t0()).await,
            Claim::Claimed {
                attempt: 1,
                first_seen: t0()
            }
        );
        assert_eq!(
            claim(&store, "k", Token::random(), t0()).await,
            Claim::InFlight { attempts: 1 }
        );
        // Even the owner's own token does not claim twice.
        assert_eq!(
            claim(&store, "k", first, t0()).await,
            Claim::InFlight { attempts: 1 }
        );
        assert_eq!(store.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn complete_by_the_owner_makes_it_done() {
        let store = MemoryStore::new();
        let owner = Token::random();
        claim(&store, "k", owner, t0()).await;
        let at = t0() + Duration::from_millis(1500);
        assert!(store.complete("k", owner, WINDOW, at).await.unwrap());
        assert_eq!(
            claim(&store, "k", Token::random(), at).await,
            Claim::Done {
                attempts: 1,
                completed_at: at
            }
        );
        // Done is final: neither the old owner nor anyone else can change it.
        assert!(!store.complete("k", owner, WINDOW, at).await.unwrap());
        assert!(!store.release("k", owner, WINDOW).await.unwrap());
        assert_eq!(
            claim(&store, "k", Token::random(), at).await,
            Claim::Done {
                attempts: 1,
                completed_at: at
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wrong_token_changes_nothing() {
        let store = MemoryStore::new();
        let owner = Token::random();
        let other = Token::random();
        claim(&store, "k", owner, t0()).await;
        assert!(!store.complete("k", other, WINDOW, t0()).await.unwrap());
        assert!(!store.release("k", other, WINDOW).await.unwrap());
        assert_eq!(
            claim(&store, "k", other, t0()).await,
            Claim::InFlight { attempts: 1 }
        );
        assert!(store.complete("k", owner, WINDOW, t0()).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_keys_are_neither_completed_nor_released() {
        let store = MemoryStore::new();
        let token = Token::random();
        assert!(!store.complete("k", token, WINDOW, t0()).await.unwrap());
        assert!(!store.release("k", token, WINDOW).await.unwrap());
        assert!(store.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_key_is_claimed_again_with_its_history() {
        let store = MemoryStore::new();
        let first = Token::random();
        claim(&store, "k", first, t0()).await;
        assert!(store.release("k", first, WINDOW).await.unwrap());
        assert!(!store.release("k", first, WINDOW).await.unwrap());

        tokio::time::advance(Duration::from_secs(60)).await;
        let later = t0() + Duration::from_secs(60);
        let second = Token::random();
        assert_eq!(
            claim(&store, "k", second, later).await,
            Claim::Claimed {
                attempt: 2,
                first_seen: t0()
            }
        );
        // The first claimant's token no longer owns anything.
        assert!(!store.complete("k", first, WINDOW, later).await.unwrap());
        assert!(store.complete("k", second, WINDOW, later).await.unwrap());
        assert_eq!(
            claim(&store, "k", Token::random(), later).await,
            Claim::Done {
                attempts: 2,
                completed_at: later
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_claim_is_claimable_again() {
        let store = MemoryStore::new();
        let crashed = Token::random();
        claim(&store, "k", crashed, t0()).await;

        tokio::time::advance(TTL - Duration::from_millis(1)).await;
        assert_eq!(
            claim(&store, "k", Token::random(), t0()).await,
            Claim::InFlight { attempts: 1 }
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        let later = t0() + TTL;
        let next = Token::random();
        assert_eq!(
            claim(&store, "k", next, later).await,
            Claim::Claimed {
                attempt: 1,
                first_seen: later
            }
        );
        assert!(!store.complete("k", crashed, WINDOW, later).await.unwrap());
        assert!(!store.release("k", crashed, WINDOW).await.unwrap());
        assert!(store.complete("k", next, WINDOW, later).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_claim_cannot_be_completed() {
        let store = MemoryStore::new();
        let slow = Token::random();
        claim(&store, "k", slow, t0()).await;
        tokio::time::advance(TTL).await;
        assert!(!store.complete("k", slow, WINDOW, t0()).await.unwrap());
        assert!(!store.release("k", slow, WINDOW).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn done_expires_after_the_window() {
        let store = MemoryStore::new();
        let owner = Token::random();
        claim(&store, "k", owner, t0()).await;
        store.complete("k", owner, WINDOW, t0()).await.unwrap();

        tokio::time::advance(WINDOW - Duration::from_millis(1)).await;
        assert!(matches!(
            claim(&store, "k", Token::random(), t0()).await,
            Claim::Done { attempts: 1, .. }
        ));
        tokio::time::advance(Duration::from_millis(1)).await;
        let later = t0() + WINDOW;
        assert_eq!(
            claim(&store, "k", Token::random(), later).await,
            Claim::Claimed {
                attempt: 1,
                first_seen: later
            }
        );
        assert_eq!(store.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn released_history_expires_after_the_window() {
        let store = MemoryStore::new();
        let owner = Token::random();
        claim(&store, "k", owner, t0()).await;
        store.release("k", owner, WINDOW).await.unwrap();
        tokio::time::advance(WINDOW).await;
        let later = t0() + WINDOW;
        assert_eq!(
            claim(&store, "k", Token::random(), later).await,
            Claim::Claimed {
                attempt: 1,
                first_seen: later
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_holds_under_ten_times_more_keys_and_keeps_live_claims() {
        let store = MemoryStore::with_capacity(1000);
        let live: Vec<(String, Token)> = (0..50)
            .map(|i| (format!("live:{i}"), Token::random()))
            .collect();
        for (key, token) in &live {
            claim(&store, key, *token, t0()).await;
        }
        for i in 0..10_000 {
            let key = format!("route:evt_{i:016}");
            let token = Token::random();
            assert!(matches!(
                claim(&store, &key, token, t0()).await,
                Claim::Claimed { attempt: 1, .. }
            ));
            assert!(store.complete(&key, token, WINDOW, t0()).await.unwrap());
            assert!(store.len() <= 1000);
        }
        assert_eq!(store.len(), 1000);
        for (key, token) in &live {
            assert_eq!(
                claim(&store, key, Token::random(), t0()).await,
                Claim::InFlight { attempts: 1 }
            );
            assert!(store.complete(key, *token, WINDOW, t0()).await.unwrap());
        }
        // The most recent done keys are still there.
        for i in 9_900..10_000 {
            let key = format!("route:evt_{i:016}");
            assert!(matches!(
                claim(&store, &key, Token::random(), t0()).await,
                Claim::Done { .. }
            ));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_evicted_before_live_ones() {
        // Under 128 entries the store is one shard: which keys compete for room does not depend
        // on the hash's random keys (with several shards, one that draws more than its share
        // of keys evicts live entries, by design, and the test would be flaky).
        let store = MemoryStore::with_capacity(100);
        for i in 0..100 {
            let key = format!("old:{i}");
            let token = Token::random();
            claim(&store, &key, token, t0()).await;
            // Half the entries expire after a minute, half after the window.
            let window = if i % 2 == 0 {
                Duration::from_secs(60)
            } else {
                WINDOW
            };
            store.complete(&key, token, window, t0()).await.unwrap();
        }
        tokio::time::advance(Duration::from_secs(61)).await;
        for i in 0..25 {
            let key = format!("new:{i}");
            let token = Token::random();
            claim(&store, &key, token, t0()).await;
            store.complete(&key, token, WINDOW, t0()).await.unwrap();
        }
        assert_eq!(store.len(), 100);
        for i in (1..100).step_by(2) {
            assert!(matches!(
                claim(&store, &format!("old:{i}"), Token::random(), t0()).await,
                Claim::Done { .. }
            ));
        }
        for i in 0..25 {
            assert!(matches!(
                claim(&store, &format!("new:{i}"), Token::random(), t0()).await,
                Claim::Done { .. }
            ));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn tiny_capacities_are_still_bounds() {
        let store = MemoryStore::with_capacity(0);
        assert_eq!(store.capacity(), 1);
        let a = Token::random();
        claim(&store, "a", a, t0()).await;
        // Full of one live claim: it is evicted rather than the bound exceeded.
        assert!(matches!(
            claim(&store, "b", Token::random(), t0()).await,
            Claim::Claimed { attempt: 1, .. }
        ));
        assert_eq!(store.len(), 1);
        assert!(!store.complete("a", a, WINDOW, t0()).await.unwrap());

        let store = MemoryStore::with_capacity(100);
        for i in 0..1000 {
            claim(&store, &i.to_string(), Token::random(), t0()).await;
            assert!(store.len() <= 100);
        }
        assert_eq!(store.len(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_entries() {
        let store = MemoryStore::new();
        let clone = store.clone();
        claim(&store, "k", Token::random(), t0()).await;
        assert_eq!(
            claim(&clone, "k", Token::random(), t0()).await,
            Claim::InFlight { attempts: 1 }
        );
        let debug = format!("{store:?}");
        assert!(debug.contains("len: 1"), "{debug}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn simultaneous_claimers_have_one_winner_per_key() {
        const TASKS: usize = 8;
        const KEYS: usize = 10_000;
        let store = MemoryStore::new();
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let mut won = Vec::new();
                    for k in 0..KEYS {
                        // Each task walks the keys from a different start.
                        let key = format!("route:evt_{:016}", (k + t * KEYS / TASKS) % KEYS);
                        match store
                            .claim(&key, Token::random(), WINDOW, t0())
                            .await
                            .unwrap()
                        {
                            Claim::Claimed { attempt: 1, .. } => won.push(key),
                            Claim::InFlight { attempts: 1 } => {}
                            other => panic!("{key}: {other:?}"),
                        }
                    }
                    won
                })
            })
            .collect();
        let mut winners: HashMap<String, usize> = HashMap::new();
        for task in tasks {
            for key in task.await.unwrap() {
                *winners.entry(key).or_default() += 1;
            }
        }
        assert_eq!(winners.len(), KEYS);
        assert!(winners.values().all(|&n| n == 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn concurrent_claim_and_release_count_every_attempt_once() {
        const TASKS: usize = 8;
        const ROUNDS: usize = 2_000;
        let store = MemoryStore::new();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut attempts = Vec::new();
                    for _ in 0..ROUNDS {
                        let token = Token::random();
                        match store.claim("hot", token, WINDOW, t0()).await.unwrap() {
                            Claim::Claimed {
                                attempt,
                                first_seen,
                            } => {
                                assert_eq!(first_seen, t0());
                                attempts.push(attempt);
                                assert!(store.release("hot", token, WINDOW).await.unwrap());
                            }
                            Claim::InFlight { .. } => tokio::task::yield_now().await,
                            other => panic!("{other:?}"),
                        }
                    }
                    attempts
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all.sort_unstable();
        let expected: Vec<u32> = (1..=all.len() as u32).collect();
        assert_eq!(all, expected);
    }
}
