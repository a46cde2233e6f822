//! Work done in the background rather than on a request: reloading signing
//! keys when the database changed, noticing changes made outside Tollgate,
//! probing a store that refused a write, writing the API-key uses noted by
//! requests, and pruning limits and expired revocations. The server only
//! schedules these, on its runtime.

use super::{now, App};
use crate::store::Store;

impl App {
    /// Every 100 ms when the signing keys may have changed: reloads them, so
    /// a rotation through another process signs here at once, unless a
    /// request has already reloaded them (`current_keys`).
    pub async fn maintain_keys(&self) -> Result<(), String> {
        if self.signing.keys_generation() == self.keys.marker() {
            return Ok(());
        }
        self.signing
            .reload_keys()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Every second, as the `tick`-th second: probes a store that refused a
    /// write, polls for changes made outside Tollgate (and reloads the keys
    /// if they may have changed); every
    /// 5 s writes API-key uses; every 10 s prunes the limiters; every minute
    /// forgets expired revocations.
    pub async fn maintain(&self, tick: u64) -> Result<(), String> {
        if !self.store.writable() {
            // A refused write marked the store not writable: try a small
            // write every second until one goes through.
            match self.store.probe_write(now()).await {
                Ok(()) => log::warn!("database takes writes again"),
                Err(e) => log::debug!("database still not writable: {e}"),
            }
        }
        if self
            .store
            .poll_external_changes()
            .await
            .map_err(|e| e.to_string())?
        {
            log::debug!("database changed outside Tollgate; cache cleared");
        }
        // Reloads only when the key generation moved (a change seen through
        // the change log, or the poll just above), not every second.
        self.maintain_keys().await?;
        if tick.is_multiple_of(5) {
            self.flush_key_uses().await.map_err(|e| e.to_string())?;
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
            let n = self
                .prune_revocations(now())
                .await
                .map_err(|e| e.to_string())?;
            if n > 0 {
                log::info!("pruned {n} expired revocations");
            }
            self.console
                .prune_console_sessions(now())
                .await
                .map_err(|e| e.to_string())?;
        }
        if tick % 60 == 1 {
            // The console's last-hour chart: one sample a minute, the
            // first a second after start.
            self.metrics.sample(now());
        }
        Ok(())
    }

    /// Forgets revocations of tokens that expired before `now`.
    pub async fn prune_revocations(&self, now: i64) -> Result<usize, crate::store::StoreError> {
        self.store.prune_revocations(now).await
    }

    /// Writes the pending API-key uses in one transaction.
    pub async fn flush_key_uses(&self) -> Result<usize, crate::store::StoreError> {
        let uses: Vec<(String, i64)> = {
            let mut pending = crate::sync::lock(&self.key_uses);
            pending.drain().collect()
        };
        if !uses.is_empty() {
            self.store.touch_api_keys(&uses).await?;
        }
        Ok(uses.len())
    }
}
