//! Rate limits and quotas in memory: fixed windows keyed by client, IP or
//! both, with an optional ban. The counting is exact within one process; the
//! maps are pruned so memory stays bounded whatever the callers send.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

/// The most keys one limiter tracks; beyond it, expired entries are pruned
/// and, if still full, the oldest windows are dropped.
pub const MAX_KEYS: usize = 200_000;

/// The outcome of a limit check, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The limit of the window.
    pub limit: u64,
    /// Requests left in the window after this one.
    pub remaining: u64,
    /// Seconds until the window (or the ban) ends.
    pub reset: u64,
    /// Refusals of this key in its current window or ban, this one included
    /// (0 when allowed); callers log the first at `warn` and the rest at `debug`,
    /// so a flood cannot flood the logs.
    pub refusals: u64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    count: u64,
    banned_until: i64,
    refusals: u64,
}

/// Fixed-window counters keyed by `K`.
#[derive(Debug)]
pub struct Limiter<K> {
    map: Mutex<HashMap<K, Window>>,
}

impl<K: Hash + Eq + Clone> Default for Limiter<K> {
    fn default() -> Self {
        Limiter {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<K, Window>) -> T) -> T {
        let mut guard = crate::sync::lock(&self.map);
        f(&mut guard)
    }

    /// Counts one request for `key` and decides it: at most `limit` per
    /// `window` seconds. Past the limit, `ban` seconds (if non-zero) refuse
    /// every request from the moment of the excess.
    pub fn hit(&self, key: &K, limit: u64, window: i64, ban: i64, now: i64) -> Decision {
        self.with(|map| {
            if map.len() >= MAX_KEYS && !map.contains_key(key) {
                prune(map, now, window.max(ban));
            }
            let w = map.entry(key.clone()).or_insert(Window {
                start: now,
                count: 0,
                banned_until: 0,
                refusals: 0,
            });
            if w.banned_until > now {
                w.refusals += 1;
                return Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset: (w.banned_until - now) as u64,
                    refusals: w.refusals,
                };
            }
            if now >= w.start + window {
                *w = Window {
                    start: now,
                    count: 0,
                    banned_until: 0,
                    refusals: 0,
                };
            }
            if w.count >= limit {
                if ban > 0 {
                    w.banned_until = now + ban;
                }
                w.refusals += 1;
                let reset = if ban > 0 { ban } else { w.start + window - now };
                return Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset: reset.max(1) as u64,
                    refusals: w.refusals,
                };
            }
            w.count += 1;
            Decision {
                allowed: true,
                limit,
                remaining: limit - w.count,
                reset: (w.start + window - now).max(0) as u64,
                refusals: 0,
            }
        })
    }

    /// How many requests `key` has made in its current window (0 if none).
    pub fn count(&self, key: &K, window: i64, now: i64) -> u64 {
        self.with(|map| match map.get(key) {
            Some(w) if now < w.start + window => w.count,
            _ => 0,
        })
    }

    /// Whether `key` is at or past `limit` in its window, without counting.
    pub fn exhausted(&self, key: &K, limit: u64, window: i64, now: i64) -> Option<u64> {
        self.with(|map| match map.get(key) {
            Some(w) if w.banned_until > now => Some((w.banned_until - now) as u64),
            Some(w) if now < w.start + window && w.count >= limit => {
                Some((w.start + window - now).max(1) as u64)
            }
            _ => None,
        })
    }

    /// Forgets every key whose window and ban ended before `now`.
    pub fn prune(&self, now: i64, longest: i64) {
        self.with(|map| prune(map, now, longest));
    }

    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.with(|map| map.len())
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn prune<K: Hash + Eq + Clone>(map: &mut HashMap<K, Window>, now: i64, longest: i64) {
    map.retain(|_, w| w.banned_until > now || w.start + longest > now);
    if map.len() >= MAX_KEYS {
        // Still full of live windows: drop the oldest half rather than grow.
        let mut starts: Vec<i64> = map.values().map(|w| w.start).collect();
        starts.sort_unstable();
        let cut = starts[starts.len() / 2];
        map.retain(|_, w| w.start > cut || w.banned_until > now);
    }
}

/// Every limiter of a server process.
#[derive(Debug, Default)]
pub struct Limits {
    /// Tokens issued per client (quota and ban).
    pub quota: Limiter<String>,
    /// Requests per client IP and endpoint class (`true` for reads).
    pub ip: Limiter<(IpAddr, bool)>,
    /// Failed authentications per IP.
    pub fail_ip: Limiter<IpAddr>,
    /// Failed authentications per client id and IP.
    pub fail_pair: Limiter<(String, IpAddr)>,
    /// Failed authentications per client id, from anywhere.
    pub fail_client: Limiter<String>,
}

/// The window of the authentication-failure limits, in seconds.
pub const FAIL_WINDOW: i64 = 60;

impl Limits {
    /// Prunes every limiter.
    pub fn prune(&self, now: i64, longest: i64) {
        self.quota.prune(now, longest);
        self.ip.prune(now, 60);
        self.fail_ip.prune(now, FAIL_WINDOW);
        self.fail_pair.prune(now, FAIL_WINDOW);
        self.fail_client.prune(now, FAIL_WINDOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_allows_exactly_the_limit_then_bans() {
        let l: Limiter<&str> = Limiter::default();
        for i in 0..4 {
            let d = l.hit(&"c", 4, 3600, 3600, 100 + i);
            assert!(d.allowed);
            assert_eq!(d.remaining, 3 - i as u64);
        }
        let d = l.hit(&"c", 4, 3600, 3600, 200);
        assert_eq!((d.allowed, d.reset), (false, 3600));
        // The ban outlasts the window.
        assert!(!l.hit(&"c", 4, 3600, 3600, 3750).allowed);
        assert!(l.hit(&"c", 4, 3600, 3600, 3800).allowed);
    }

    #[test]
    fn window_resets_without_ban() {
        let l: Limiter<u8> = Limiter::default();
        assert!(l.hit(&1, 1, 60, 0, 0).allowed);
        let d = l.hit(&1, 1, 60, 0, 10);
        assert_eq!((d.allowed, d.reset), (false, 50));
        assert!(l.hit(&1, 1, 60, 0, 60).allowed);
        assert!(l.hit(&2, 1, 60, 0, 10).allowed, "keys are independent");
    }

    #[test]
    fn prune_bounds_memory() {
        let l: Limiter<u64> = Limiter::default();
        for k in 0..1000 {
            l.hit(&k, 10, 60, 0, 0);
        }
        l.prune(61, 60);
        assert!(l.is_empty());
    }
}
