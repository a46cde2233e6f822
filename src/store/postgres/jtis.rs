//! One-time `jti`s recorded by group commit (see [`crate::store::batch`]):
//! one `INSERT … SELECT FROM unnest(…)` per batch, one round trip and one
//! commit, each `jti` still durable before its token is issued.

use super::*;

/// One `jti` to record: (client, jti, expires_at, now).
pub(super) type AssertionUse = (String, String, i64, i64);

/// A copy of a batch's error for each of its callers.
pub(super) fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::NotWritable(m) => StoreError::NotWritable(m.clone()),
        other => StoreError::Postgres(other.to_string()),
    }
}

/// Commits queued `jti`s batch after batch until none is left.
pub(super) async fn commit_jtis(
    pool: Pool,
    queue: Arc<crate::store::batch::Queue<AssertionUse, Result<bool>>>,
) {
    let _guard = queue.guard();
    while let Some((items, senders)) = queue.take() {
        match record_jtis(&pool, &items).await {
            Ok(answers) => {
                for (answer, tx) in answers.into_iter().zip(senders) {
                    let _ = tx.send(Ok(answer));
                }
            }
            Err(e) => {
                for tx in senders {
                    let _ = tx.send(Err(copy_error(&e)));
                }
            }
        }
    }
}

/// Records `items` in one statement: for each, whether its `jti` was new
/// (or its earlier use expired). A `jti` twice in the batch is new once.
pub(super) async fn record_jtis(pool: &Pool, items: &[AssertionUse]) -> Result<Vec<bool>> {
    let mut seen = std::collections::HashSet::new();
    let first: Vec<bool> = items
        .iter()
        .map(|(c, j, _, _)| seen.insert((c.as_str(), j.as_str())))
        .collect();
    let unique: Vec<&AssertionUse> = items
        .iter()
        .zip(&first)
        .filter(|(_, f)| **f)
        .map(|(i, _)| i)
        .collect();
    let clients: Vec<&str> = unique.iter().map(|i| i.0.as_str()).collect();
    let jtis: Vec<&str> = unique.iter().map(|i| i.1.as_str()).collect();
    let exps: Vec<i64> = unique.iter().map(|i| i.2).collect();
    // Seconds apart at most: the earliest `now` decides whether a recorded
    // use has expired (the stricter answer).
    let now = unique.iter().map(|i| i.3).min().unwrap_or(0);
    let conn = pool.get().await?;
    let stmt = conn
        .prepare_cached(
            "INSERT INTO assertion_jtis (client_id, jti, expires_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) \
             ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at \
             WHERE assertion_jtis.expires_at < $4 \
             RETURNING client_id, jti",
        )
        .await?;
    let rows = conn.query(&stmt, &[&clients, &jtis, &exps, &now]).await?;
    let new: std::collections::HashSet<(String, String)> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    Ok(items
        .iter()
        .zip(first)
        .map(|((c, j, _, _), first)| first && new.contains(&(c.clone(), j.clone())))
        .collect())
}
