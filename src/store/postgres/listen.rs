//! The fleet's change signal: one connection LISTENs on `tollgate_changes`
//! and, for every notification, bumps the change marker and logs what the
//! writer said it changed; a reconnect logs that anything may have.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PostgresStore;
use crate::store::changes::Change;

impl PostgresStore {
    /// Keeps one connection LISTENing on `tollgate_changes`, reconnecting
    /// after a second when it drops, on the current runtime. A notification's
    /// payload is `<version>` or `<version> <change>` (see
    /// [`Change::to_text`]); each bumps the change marker with its change
    /// (a bare one, or a (re)connect, with [`Change::Everything`]).
    pub(super) fn spawn_listener(&self, pg: tokio_postgres::Config, tls: MakeRustlsConnect) {
        let changes = self.changes.clone();
        let log = self.log.clone();
        let notified = self.notified.clone();
        let down_at = self.down_at.clone();
        let (grace_ms, confirmed_ms, is_listening) = (
            self.grace_ms.clone(),
            self.confirmed_ms.clone(),
            self.listening.clone(),
        );
        let bump = move |change: Change| {
            log.record(|| changes.fetch_add(1, Ordering::SeqCst) + 1, change);
        };
        tokio::spawn(async move {
            loop {
                match pg.connect(tls.clone()).await {
                    Ok((client, mut connection)) => {
                        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
                        let driver = tokio::spawn(async move {
                            loop {
                                let msg =
                                    std::future::poll_fn(|cx| connection.poll_message(cx)).await;
                                match msg {
                                    Some(Ok(AsyncMessage::Notification(n))) => {
                                        let _ = tx.send(n.payload().to_string());
                                    }
                                    Some(Ok(_)) => {}
                                    Some(Err(e)) => {
                                        log::warn!("change listener: {e}");
                                        break;
                                    }
                                    None => break,
                                }
                            }
                        });
                        let listening = async {
                            client.batch_execute("LISTEN tollgate_changes").await?;
                            // The schema our tables are in (as the search
                            // path finds them), and the version reached.
                            client
                                .query_one(
                                    "SELECT n.nspname::text, t.version FROM tollgate_changes t \
                                     JOIN pg_class c ON c.oid = 'tollgate_changes'::regclass \
                                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                                     WHERE t.id = 1",
                                    &[],
                                )
                                .await
                        };
                        match listening.await {
                            Ok(row) => {
                                // Back: stop failing fast, and, since anything
                                // may have changed while we were not listening,
                                // drop what the cache holds.
                                let schema: String = row.get(0);
                                let version: i64 = row.get(1);
                                notified.fetch_max(version, Ordering::SeqCst);
                                down_at.store(0, Ordering::SeqCst);
                                is_listening.store(true, Ordering::SeqCst);
                                confirmed_ms.store(super::now_ms(), Ordering::SeqCst);
                                bump(Change::Everything);
                                while let Some(payload) = rx.recv().await {
                                    // Another deployment's schema: not ours.
                                    let Some((version, change)) = parse(&schema, &payload) else {
                                        continue;
                                    };
                                    notified.fetch_max(version, Ordering::SeqCst);
                                    bump(change);
                                }
                            }
                            Err(e) => log::warn!("change listener: LISTEN failed: {e}"),
                        }
                        is_listening.store(false, Ordering::SeqCst);
                        drop(client);
                        driver.abort();
                        log::warn!("change listener disconnected; reconnecting");
                    }
                    Err(e) => log::warn!("change listener cannot connect: {e}"),
                }
                // Not listening, so changes may be missed: drop what the
                // cache holds, unless the outage grace lasts (then the next
                // connection, or the grace's end, drops it).
                let grace = grace_ms.load(Ordering::SeqCst);
                let left = confirmed_ms.load(Ordering::SeqCst) + grace - super::now_ms();
                if grace > 0 && left > 0 {
                    log::warn!(
                        "database unreachable: serving from the cache for at most {} s more \
                         (TOLLGATE_OUTAGE_GRACE); writes answer 503",
                        (left + 999) / 1000
                    );
                } else {
                    bump(Change::Everything);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

/// A notification's payload, `<schema> <version>[ <change>]`: the version
/// the change trigger reached and what the writer said it changed (nothing
/// said: anything); `None` for another schema's tables, and for the bare
/// version that schema versions 1 and 2 sent (our schema is migrated before
/// the listener starts, so such a payload is another deployment's).
fn parse(schema: &str, payload: &str) -> Option<(i64, Change)> {
    let rest = payload.strip_prefix(schema)?.strip_prefix(' ')?;
    let (version, change) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((
        version.parse().ok()?,
        if change.is_empty() {
            Change::Everything
        } else {
            Change::from_text(change)
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_their_schema_version_and_change() {
        let ours = |p: &str| parse("tg", p);
        assert_eq!(ours("tg 7"), Some((7, Change::Everything)));
        assert_eq!(
            ours("tg 8 r:j 1"),
            Some((8, Change::Revocation("j 1".into())))
        );
        assert_eq!(ours("tg 9 s"), Some((9, Change::SigningKeys)));
        assert_eq!(ours("tgx 9 s"), None, "another schema");
        assert_eq!(ours("other 9 c:a"), None);
        assert_eq!(ours("tg x c:a"), None);
        assert_eq!(ours("12"), None, "a schema-2 deployment's");
    }
}
