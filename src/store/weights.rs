//! What the cache's entries weigh: an estimate of the bytes each holds,
//! inline and on the heap, computed once as it goes in, which bounds the
//! cache by bytes (`TOLLGATE_CACHE_MIB`).

use std::sync::Arc;

use super::bounded::Weigh;
use super::{ApiKeyRecord, Client, ClientSecretRecord};

/// A client (or its absence) with its live secrets, as the cache keeps it.
/// The record is shared on its own, so a request reads it without a copy.
pub(super) type ClientEntry = Arc<(Option<Arc<Client>>, Vec<ClientSecretRecord>)>;

fn strings(v: &[String]) -> usize {
    std::mem::size_of_val(v) + v.iter().map(String::capacity).sum::<usize>()
}

impl Weigh for ClientEntry {
    /// The record inline and on the heap: its strings, scopes and
    /// audiences, its registered keys (a parsed JSON value takes about
    /// three times its text), and each secret's digest.
    fn weigh(&self) -> usize {
        use crate::domain::{ClientAuth, KeySource};
        let (client, secrets) = &**self;
        let record = client.as_ref().map_or(0, |c| {
            // The record's own allocation: its counts and its inline size.
            16 + std::mem::size_of::<Client>()
                + c.id.capacity()
                + c.name.capacity()
                + c.owner.as_ref().map_or(0, String::capacity)
                + strings(&c.scopes)
                + strings(&c.audiences)
                + match &c.auth {
                    ClientAuth::PrivateKeyJwt(k) | ClientAuth::SelfSignedTls(k) => match k {
                        KeySource::Jwks(v) => 3 * v.to_string().len(),
                        KeySource::Uri(u) => u.capacity(),
                    },
                    ClientAuth::TlsClientAuth(name) => name.field().1.len(),
                    ClientAuth::Secret(_) => 0,
                }
                + c.token_exchange.as_ref().map_or(0, |p| {
                    std::mem::size_of::<crate::domain::ExchangePolicy>() + p.heap_bytes()
                })
                // A parsed JSON value takes about three times its text.
                + c.claims.as_ref().map_or(0, |m| {
                    3 * serde_json::to_string(m).map_or(0, |t| t.len())
                })
        });
        // The Arc's counts and its allocation.
        16 + std::mem::size_of::<(Option<Arc<Client>>, Vec<ClientSecretRecord>)>()
            + record
            + secrets.capacity() * std::mem::size_of::<ClientSecretRecord>()
            + secrets.iter().map(|s| s.digest.capacity()).sum::<usize>()
    }
}

impl Weigh for ApiKeyRecord {
    fn weigh(&self) -> usize {
        std::mem::size_of::<ApiKeyRecord>()
            + self.id.capacity()
            + self.client_id.capacity()
            + self.name.as_ref().map_or(0, String::capacity)
            + self.digest.capacity()
            + self.prefix.capacity()
            + self.last4.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::ClientEntry;

    #[test]
    fn a_cached_client_weighs_what_it_holds() {
        use super::super::bounded::Weigh;
        use super::super::{Client, ClientSecretRecord};
        use std::sync::Arc;
        let client = Client {
            scopes: vec!["invoices:read".into(), "invoices:write".into()],
            audiences: vec!["https://billing.example.com".into()],
            ..Client::fixture("tgc_IE2NrTjv5RiDDgIZRnRPsQ")
        };
        let secret = ClientSecretRecord {
            id: 1,
            digest: vec![0; 32],
            created_at: 0,
            expires_at: None,
        };
        let entry: ClientEntry = Arc::new((Some(Arc::new(client)), vec![secret]));
        let w = entry.weigh();
        // The record's inline size dominates: about 600 bytes with its
        // strings, scopes, audience and one secret (docs/operations.md).
        assert!((400..900).contains(&w), "{w}");
        let unknown: ClientEntry = Arc::new((None, vec![]));
        assert!(unknown.weigh() < w);
        eprintln!(
            "a cached client: {w} bytes (Client inline: {}); an unknown id: {}",
            std::mem::size_of::<Client>(),
            unknown.weigh()
        );
    }
}
