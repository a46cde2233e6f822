//! Fleet-wide token quotas counted in PostgreSQL's unlogged
//! `quota_usage` table: one upsert per token decides it.

use super::*;

#[async_trait::async_trait]
impl crate::store::SharedQuota for PostgresStore {
    async fn hit(
        &self,
        client_id: &str,
        limit: u64,
        window: i64,
        ban: i64,
        now: i64,
    ) -> Result<Decision> {
        self.call(async {
            let limit_i = limit.min(i64::MAX as u64) as i64;
            let row = self
                .query_opt(
                    "SELECT o_allowed, o_remaining, o_reset, o_refusals \
                     FROM tollgate_quota_hit($1, $2, $3, $4, $5)",
                    &[&client_id, &limit_i, &window, &ban, &now],
                )
                .await?
                .ok_or_else(|| StoreError::Corrupt("quota function returned nothing".into()))?;
            let n = |i: usize| -> Result<u64> { Ok(row.try_get::<_, i64>(i)?.max(0) as u64) };
            Ok(Decision {
                allowed: row.try_get(0)?,
                limit,
                remaining: n(1)?,
                reset: n(2)?,
                refusals: n(3)?,
            })
        })
        .await
    }
}
