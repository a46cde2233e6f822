//! Work done in the background rather than on a request: writing the
//! API-key uses noted by requests.

use super::App;

impl App {
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
