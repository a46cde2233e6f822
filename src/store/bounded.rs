//! The bounded maps the cache keeps: each cleared when full, with a
//! generation counter so that a read in flight never keeps what a write
//! made stale.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Entries per map before it is cleared (bounds memory whatever callers send).
pub const CAPACITY: usize = 100_000;

pub(super) struct Map<K, V> {
    generation: u64,
    entries: HashMap<K, V>,
}

/// One bounded map with a generation counter.
pub(super) struct Cache<K, V> {
    inner: Mutex<Map<K, V>>,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    pub(super) fn new() -> Self {
        Cache {
            inner: Mutex::new(Map {
                generation: 0,
                entries: HashMap::new(),
            }),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Map<K, V>> {
        crate::sync::lock(&self.inner)
    }

    /// The cached value and the generation it belongs to.
    pub(super) fn get(&self, k: &K) -> (Option<V>, u64) {
        let g = self.lock();
        (g.entries.get(k).cloned(), g.generation)
    }

    /// Keeps `v` unless the cache was cleared since `generation` was read.
    pub(super) fn put(&self, generation: u64, k: K, v: V) {
        let mut g = self.lock();
        if g.generation != generation {
            return;
        }
        if g.entries.len() >= CAPACITY {
            g.entries.clear();
        }
        g.entries.insert(k, v);
    }

    /// Sets a value known to be current; a read in flight does not
    /// overwrite it with what it read before.
    pub(super) fn set(&self, k: K, v: V) {
        let mut g = self.lock();
        g.generation += 1;
        if g.entries.len() >= CAPACITY {
            g.entries.clear();
        }
        g.entries.insert(k, v);
    }

    pub(super) fn clear(&self) {
        let mut g = self.lock();
        g.generation += 1;
        g.entries.clear();
    }

    /// Forgets one entry; a read in flight does not keep what it read.
    pub(super) fn remove(&self, k: &K) {
        let mut g = self.lock();
        g.generation += 1;
        g.entries.remove(k);
    }

    /// Forgets the entries `drop` picks.
    pub(super) fn forget(&self, mut drop: impl FnMut(&K, &V) -> bool) {
        let mut g = self.lock();
        g.generation += 1;
        g.entries.retain(|k, v| !drop(k, v));
    }
}
