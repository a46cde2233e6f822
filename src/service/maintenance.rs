//! Work done in the background rather than on a request: reloading signing
//! keys when the database changed, noticing changes made outside Tollgate,
//! probing a store that refused a write, writing the API-key uses noted by
//! requests, and pruning limits and expired revocations. The server only
//! schedules these; they are blocking (they may query the store).

use super::{now, App};

impl App {
    /// The store's change marker: one atomic load, never blocks.
    pub fn change_marker(&self) -> i64 {
        self.store.change_marker().unwrap_or(0)
    }

    /// Every 100 ms when the change marker moved: reloads the signing keys,
    /// so a rotation through another process signs here at once, unless a
    /// request has already reloaded them at this marker (`current_keys`).
    pub fn maintain_keys(&self) -> Result<(), String> {
        if self.change_marker() == self.keys.marker() {
            return Ok(());
        }
        self.reload_keys().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Every second, as the `tick`-th second: probes a store that refused a
    /// write, reloads keys, polls for changes made outside Tollgate; every
    /// 5 s writes API-key uses; every 10 s prunes the limiters; every minute
    /// forgets expired revocations.
    pub fn maintain(&self, tick: u64) -> Result<(), String> {
        if !self.cache.writable() {
            // A refused write marked the store not writable: try a small
            // write every second until one goes through.
            match self.store.probe_write(now()) {
                Ok(()) => log::warn!("database takes writes again"),
                Err(e) => log::debug!("database still not writable: {e}"),
            }
        }
        self.reload_keys().map_err(|e| e.to_string())?;
        if self
            .cache
            .poll_external_changes()
            .map_err(|e| e.to_string())?
        {
            log::debug!("database changed outside Tollgate; cache cleared");
        }
        if tick.is_multiple_of(5) {
            self.flush_key_uses().map_err(|e| e.to_string())?;
        }
        if tick.is_multiple_of(10) {
            let longest = self
                .config
                .token_quota_window
                .max(self.config.token_quota_ban)
                .max(30 * 86_400);
            self.limits.prune(now(), longest);
        }
        if tick.is_multiple_of(60) {
            let n = self.prune_revocations(now()).map_err(|e| e.to_string())?;
            if n > 0 {
                log::info!("pruned {n} expired revocations");
            }
        }
        Ok(())
    }

    /// Forgets revocations of tokens that expired before `now`.
    pub fn prune_revocations(&self, now: i64) -> Result<usize, crate::store::StoreError> {
        self.store.prune_revocations(now)
    }

    /// Writes the pending API-key uses in one transaction.
    pub fn flush_key_uses(&self) -> Result<usize, crate::store::StoreError> {
        let uses: Vec<(String, i64)> = {
            let mut pending = match self.key_uses.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            pending.drain().collect()
        };
        if !uses.is_empty() {
            self.store.touch_api_keys(&uses)?;
        }
        Ok(uses.len())
    }
}
