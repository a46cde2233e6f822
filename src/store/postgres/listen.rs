//! The fleet's change signal: one connection LISTENs on `tollgate_changes`
//! and bumps the change marker on every notification and every reconnect.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PostgresStore;

impl PostgresStore {
    /// Keeps one connection LISTENing on `tollgate_changes`, reconnecting
    /// after a second when it drops. Each notification, and each (re)connect,
    /// bumps the change marker.
    pub(super) fn spawn_listener(&self, pg: tokio_postgres::Config, tls: MakeRustlsConnect) {
        let Some(rt) = &self.runtime else { return };
        let changes = self.changes.clone();
        let down_at = self.down_at.clone();
        rt.spawn(async move {
            loop {
                match pg.connect(tls.clone()).await {
                    Ok((client, mut connection)) => {
                        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
                        let driver = tokio::spawn(async move {
                            loop {
                                let msg =
                                    std::future::poll_fn(|cx| connection.poll_message(cx)).await;
                                match msg {
                                    Some(Ok(AsyncMessage::Notification(_))) => {
                                        let _ = tx.send(());
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
                        match client.batch_execute("LISTEN tollgate_changes").await {
                            Ok(()) => {
                                // Back: stop failing fast, and, since anything
                                // may have changed while we were not listening,
                                // drop what the cache holds.
                                down_at.store(0, Ordering::SeqCst);
                                changes.fetch_add(1, Ordering::SeqCst);
                                while rx.recv().await.is_some() {
                                    changes.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            Err(e) => log::warn!("change listener: LISTEN failed: {e}"),
                        }
                        drop(client);
                        driver.abort();
                        log::warn!("change listener disconnected; reconnecting");
                    }
                    Err(e) => log::warn!("change listener cannot connect: {e}"),
                }
                changes.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}
