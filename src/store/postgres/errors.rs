//! The driver's and the pool's errors as [`StoreError`]s: unreachable,
//! not writable, or a fault, with every cause in the message.

use super::*;

/// An error with its causes ("error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer"); the driver's own message names only the
/// first.
pub(super) fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text = format!("{text}: {next}");
        }
        cause = c.source();
    }
    text
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // A closed connection or a failed connect means the server is away;
        // anything the server answered is an ordinary database error.
        use tokio_postgres::error::SqlState;
        if e.is_closed() || e.as_db_error().is_none() && e.code().is_none() {
            StoreError::Unavailable(describe(&e))
        } else if e.code().is_some_and(|c| {
            // A NUL character, or one the database's encoding lacks, in a
            // value the request supplied.
            *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE || *c == SqlState::UNTRANSLATABLE_CHARACTER
        }) {
            StoreError::Unstorable(describe(&e))
        } else if e.code().is_some_and(|c| {
            // A standby after a failover, a full disk, a server in recovery:
            // it answers, but takes no write now.
            *c == SqlState::READ_ONLY_SQL_TRANSACTION
                || *c == SqlState::DISK_FULL
                || *c == SqlState::INSUFFICIENT_RESOURCES
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::ADMIN_SHUTDOWN
        }) {
            StoreError::NotWritable(describe(&e))
        } else {
            StoreError::Postgres(describe(&e))
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Unavailable(describe(&e))
    }
}
