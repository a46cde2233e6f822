//! What a committed write changed, as the caches need to know it: one client,
//! one API key, one revoked token, the signing keys, the federation rules,
//! or anything at all. A store numbers its writes with its change marker and
//! keeps the recent ones in a [`ChangeLog`], so a cache forgets exactly what
//! a write touched instead of everything it holds.

use std::collections::VecDeque;
use std::sync::Mutex;

/// One write's effect on cached state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A client's record or its secrets changed, or it was deleted (with its
    /// API keys).
    Client(String),
    /// An API key was created or revoked; `digest` when known.
    ApiKey {
        /// The key's id.
        id: String,
        /// SHA-256 of the key, when the writer knew it (creation).
        digest: Option<Vec<u8>>,
    },
    /// An access token was revoked.
    Revocation(String),
    /// A signing key was added, retired or marked compromised.
    SigningKeys,
    /// A trusted issuer or federation rule was added or removed.
    Federation,
    /// Unknown: a bulk import, a write outside Tollgate, missed notifications.
    Everything,
}

/// Longest text a change describes itself with; a longer one (an id no
/// caller could have created through the API) is sent as [`Change::Everything`].
const MAX_TEXT: usize = 1024;

impl Change {
    /// The text sent with a PostgreSQL notification (`c:<id>`, `k:<id>` or
    /// `k:<id>:<hex digest>`, `r:<jti>`, `s`, `f`), or `None` for
    /// [`Change::Everything`], which a bare notification already means.
    pub fn to_text(&self) -> Option<String> {
        let text = match self {
            Change::Client(id) => format!("c:{id}"),
            Change::ApiKey { id, digest: None } => format!("k:{id}"),
            Change::ApiKey {
                id,
                digest: Some(d),
            } => format!("k:{id}:{}", hex(d)),
            Change::Revocation(jti) => format!("r:{jti}"),
            Change::SigningKeys => "s".to_string(),
            Change::Federation => "f".to_string(),
            Change::Everything => return None,
        };
        (text.len() <= MAX_TEXT).then_some(text)
    }

    /// Parses [`Change::to_text`]; anything else is [`Change::Everything`].
    pub fn from_text(text: &str) -> Change {
        match text.split_once(':') {
            Some(("c", id)) => Change::Client(id.to_string()),
            Some(("r", jti)) => Change::Revocation(jti.to_string()),
            Some(("k", rest)) => match rest.rsplit_once(':') {
                Some((id, d)) => match unhex(d) {
                    Some(digest) => Change::ApiKey {
                        id: id.to_string(),
                        digest: Some(digest),
                    },
                    None => Change::Everything,
                },
                None => Change::ApiKey {
                    id: rest.to_string(),
                    digest: None,
                },
            },
            None if text == "s" => Change::SigningKeys,
            None if text == "f" => Change::Federation,
            _ => Change::Everything,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Writes remembered per log, oldest forgotten first; a reader further
/// behind than this forgets everything instead.
pub const LOG_CAPACITY: usize = 4096;

/// The recent writes of one process (SQLite) or one fleet (PostgreSQL, from
/// its notifications), by change-marker value.
#[derive(Debug, Default)]
pub struct ChangeLog {
    entries: Mutex<VecDeque<(i64, Change)>>,
}

impl ChangeLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(i64, Change)>> {
        crate::sync::lock(&self.entries)
    }

    /// Moves the marker with `bump` (which returns its new value) and records
    /// `change` under that value, both under the log's lock, so that a reader
    /// that sees the new marker finds its entry.
    pub fn record(&self, bump: impl FnOnce() -> i64, change: Change) {
        let mut entries = self.lock();
        let marker = bump();
        if entries.len() >= LOG_CAPACITY {
            entries.pop_front();
        }
        entries.push_back((marker, change));
    }

    /// The changes numbered `after + 1 ..= upto`, or `None` when any of them
    /// is not in this log (another process wrote it, or it was forgotten):
    /// then the reader must assume that anything changed.
    pub fn between(&self, after: i64, upto: i64) -> Option<Vec<Change>> {
        if upto <= after {
            return Some(Vec::new());
        }
        let wanted = usize::try_from(upto - after).ok()?;
        if wanted > LOG_CAPACITY {
            return None;
        }
        let entries = self.lock();
        let found: Vec<Change> = entries
            .iter()
            .filter(|(m, _)| *m > after && *m <= upto)
            .map(|(_, c)| c.clone())
            .collect();
        (found.len() == wanted).then_some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    #[test]
    fn changes_survive_their_text_form() {
        for c in [
            Change::Client("tgc_a:b".into()),
            Change::ApiKey {
                id: "k1".into(),
                digest: None,
            },
            Change::ApiKey {
                id: "k1".into(),
                digest: Some(vec![0, 1, 254, 255]),
            },
            Change::Revocation("j t i".into()),
            Change::SigningKeys,
            Change::Federation,
        ] {
            assert_eq!(Change::from_text(&c.to_text().unwrap()), c);
        }
        assert_eq!(Change::Everything.to_text(), None);
        assert_eq!(Change::from_text(""), Change::Everything);
        assert_eq!(Change::from_text("x:1"), Change::Everything);
        assert_eq!(Change::from_text("k:id:zz"), Change::Everything);
        assert_eq!(Change::Client("a".repeat(2000)).to_text(), None);
    }

    #[test]
    fn a_gap_in_the_log_means_everything_changed() {
        let marker = AtomicI64::new(0);
        let log = ChangeLog::default();
        let bump = || marker.fetch_add(1, Ordering::SeqCst) + 1;
        log.record(bump, Change::Client("a".into()));
        marker.fetch_add(1, Ordering::SeqCst); // another process's write
        log.record(bump, Change::Revocation("j".into()));
        assert_eq!(log.between(0, 1), Some(vec![Change::Client("a".into())]));
        assert_eq!(
            log.between(2, 3),
            Some(vec![Change::Revocation("j".into())])
        );
        assert_eq!(log.between(0, 3), None, "write 2 is not ours");
        assert_eq!(log.between(3, 3), Some(vec![]));
        assert_eq!(log.between(3, 4), None, "not written yet");
    }

    #[test]
    fn a_reader_too_far_behind_forgets_everything() {
        let marker = AtomicI64::new(0);
        let log = ChangeLog::default();
        for _ in 0..LOG_CAPACITY + 5 {
            log.record(
                || marker.fetch_add(1, Ordering::SeqCst) + 1,
                Change::SigningKeys,
            );
        }
        let top = marker.load(Ordering::SeqCst);
        assert_eq!(log.between(0, top), None);
        assert_eq!(log.between(top - 10, top).map(|v| v.len()), Some(10));
    }
}
