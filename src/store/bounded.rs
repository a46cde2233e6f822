//! The bounded maps the cache keeps: each bounded by entries and by bytes
//! (an estimate of what its keys and values hold on the heap, counted as
//! they go in), cleared when either bound is reached, with a generation
//! counter so that a read in flight never keeps what a write made stale.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Entries per map before it is cleared (bounds memory whatever callers send).
pub const CAPACITY: usize = 100_000;

/// What a hash-map slot costs beyond its key and value: the table's
/// control byte and spare capacity, rounded up.
const SLOT_OVERHEAD: usize = 16;

/// The bytes an entry holds: its inline size and what it owns on the heap.
pub(crate) trait Weigh {
    /// An estimate in bytes, computed once when the entry goes in.
    fn weigh(&self) -> usize;
}

impl Weigh for String {
    fn weigh(&self) -> usize {
        std::mem::size_of::<String>() + self.capacity()
    }
}

impl Weigh for Vec<u8> {
    fn weigh(&self) -> usize {
        std::mem::size_of::<Vec<u8>>() + self.capacity()
    }
}

impl Weigh for bool {
    fn weigh(&self) -> usize {
        1
    }
}

impl<T: Weigh> Weigh for Option<T> {
    fn weigh(&self) -> usize {
        self.as_ref()
            .map_or(std::mem::size_of::<Option<T>>(), Weigh::weigh)
    }
}

pub(super) struct Map<K, V> {
    generation: u64,
    entries: HashMap<K, (V, usize)>,
    /// The sum of the entries' weights.
    bytes: usize,
}

/// One bounded map with a generation counter.
pub(super) struct Cache<K, V> {
    inner: Mutex<Map<K, V>>,
    /// The most bytes its entries may hold.
    budget: usize,
}

impl<K: Hash + Eq + Weigh, V: Clone + Weigh> Cache<K, V> {
    /// A map holding at most [`CAPACITY`] entries and `budget` bytes.
    pub(super) fn new(budget: usize) -> Self {
        Cache {
            inner: Mutex::new(Map {
                generation: 0,
                entries: HashMap::new(),
                bytes: 0,
            }),
            budget,
        }
    }

    /// The bytes its entries hold now, by the estimate.
    pub(super) fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn insert(&self, g: &mut Map<K, V>, k: K, v: V) {
        let w = k.weigh() + v.weigh() + SLOT_OVERHEAD;
        if g.entries.len() >= CAPACITY || g.bytes + w > self.budget {
            g.entries.clear();
            g.entries.shrink_to(CAPACITY / 16);
            g.bytes = 0;
        }
        if let Some((_, old)) = g.entries.insert(k, (v, w)) {
            g.bytes -= old;
        }
        g.bytes += w;
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Map<K, V>> {
        crate::sync::lock(&self.inner)
    }

    /// The cached value and the generation it belongs to; looked up by a
    /// borrowed key (`&str` for a `String` key), so a lookup allocates nothing.
    pub(super) fn get<Q: Hash + Eq + ?Sized>(&self, k: &Q) -> (Option<V>, u64)
    where
        K: Borrow<Q>,
    {
        let g = self.lock();
        (g.entries.get(k).map(|(v, _)| v.clone()), g.generation)
    }

    /// Keeps `v` unless the cache was cleared since `generation` was read.
    pub(super) fn put(&self, generation: u64, k: K, v: V) {
        let mut g = self.lock();
        if g.generation != generation {
            return;
        }
        self.insert(&mut g, k, v);
    }

    /// Sets a value known to be current; a read in flight does not
    /// overwrite it with what it read before.
    pub(super) fn set(&self, k: K, v: V) {
        let mut g = self.lock();
        g.generation += 1;
        self.insert(&mut g, k, v);
    }

    pub(super) fn clear(&self) {
        let mut g = self.lock();
        g.generation += 1;
        g.entries.clear();
        g.bytes = 0;
    }

    /// Forgets one entry; a read in flight does not keep what it read.
    pub(super) fn remove<Q: Hash + Eq + ?Sized>(&self, k: &Q)
    where
        K: Borrow<Q>,
    {
        let mut g = self.lock();
        g.generation += 1;
        if let Some((_, w)) = g.entries.remove(k) {
            g.bytes -= w;
        }
    }

    /// Forgets the entries `drop` picks.
    pub(super) fn forget(&self, mut drop: impl FnMut(&K, &V) -> bool) {
        let mut g = self.lock();
        g.generation += 1;
        let mut freed = 0;
        g.entries.retain(|k, (v, w)| {
            let keep = !drop(k, v);
            if !keep {
                freed += *w;
            }
            keep
        });
        g.bytes -= freed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_is_bounded_by_bytes_and_counts_what_leaves() {
        let key = |i: u32| format!("key{i:05}").into_boxed_str().into_string();
        // Each entry: a String header and its 8 bytes, a bool, the slot.
        let w = std::mem::size_of::<String>() + 8 + 1 + SLOT_OVERHEAD;
        let cache: Cache<String, bool> = Cache::new(w * 10);
        for i in 0..10 {
            cache.put(0, key(i), true);
        }
        assert_eq!(cache.lock().entries.len(), 10);
        assert_eq!(cache.bytes(), w * 10);
        // The eleventh would pass the budget: the map starts again.
        cache.put(0, key(10), true);
        assert_eq!(cache.lock().entries.len(), 1);
        assert_eq!(cache.bytes(), w);
        // Replacing, removing and forgetting keep the count exact.
        cache.set(key(10), false);
        assert_eq!(cache.bytes(), w);
        cache.set(key(11), true);
        cache.remove(&key(10));
        assert_eq!(cache.bytes(), w);
        cache.forget(|_, v| *v);
        assert_eq!((cache.bytes(), cache.lock().entries.len()), (0, 0));
    }
}
