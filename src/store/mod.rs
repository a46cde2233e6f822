//! The storage interface: clients, secrets, API keys, revocations, signing-key
//! metadata and the audit log. The only module with SQL lives below it.

mod batch;
mod bounded;
pub mod cached;
pub mod changes;
pub mod codec;
#[cfg(test)]
mod contract;
pub mod postgres;
pub mod sqlite;
mod weights;

use serde::Serialize;

pub use crate::domain::ssf::{NewSignal, PendingSignal, SsfDelivery, SsfStream, StreamStatus};
pub use crate::domain::{
    ApiKeyRecord, ApiKeyState, AuditEntry, AuditFilter, Client, ClientSecretRecord, ConsoleSession,
    Federation, FederationIssuer, FederationRule, SigningKeyRecord,
};
pub use cached::CachedStore;
pub use changes::Change;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::limits::Decision;

/// A storage failure. Its text is logged, never sent to a caller.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database answered with an error.
    #[error("database: {0}")]
    Sqlite(rusqlite::Error),
    /// The database refuses to be written now: a full disk, a read-only
    /// file or standby, a lock held too long, an I/O error. Callers answer
    /// 503 and may retry; reads (and the cache) may still work.
    #[error("database not writable: {0}")]
    NotWritable(String),
    /// No connection could be had from the pool.
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// PostgreSQL answered with an error.
    #[error("database: {0}")]
    Postgres(String),
    /// The database cannot be reached (PostgreSQL down, pool exhausted for
    /// too long): callers answer 503 and may retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The request's text cannot be stored or compared at all: PostgreSQL
    /// takes no NUL character in `text`. A request error, not a fault.
    #[error("unstorable text: {0}")]
    Unstorable(String),
    /// A blocking database call could not be run (the runtime is shutting
    /// down).
    #[error("blocking task: {0}")]
    Task(String),
    /// The database file was written by a newer Tollgate.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    TooNew {
        /// Version found in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(
                C::DiskFull
                | C::ReadOnly
                | C::SystemIoFailure
                | C::CannotOpen
                | C::DatabaseBusy
                | C::DatabaseLocked
                | C::PermissionDenied,
            ) => StoreError::NotWritable(e.to_string()),
            _ => StoreError::Sqlite(e),
        }
    }
}

impl StoreError {
    /// The `reason` label of a failed write, when the failure is the
    /// database's state rather than the request.
    pub fn write_failure_reason(&self) -> Option<&'static str> {
        match self {
            StoreError::NotWritable(_) => Some("not_writable"),
            StoreError::Unavailable(_) | StoreError::Pool(_) => Some("unavailable"),
            _ => None,
        }
    }
}

/// Opens the store a `TOLLGATE_DB` value names: a `postgres://` (or
/// `postgresql://`) URL selects PostgreSQL with at most `pool_size`
/// connections; anything else is a SQLite file path.
/// Must run inside a tokio runtime: PostgreSQL connections and SQLite's
/// blocking calls are driven by it.
pub async fn open(db: &str, pool_size: usize) -> Result<std::sync::Arc<dyn Store>> {
    if postgres::is_postgres_url(db) {
        Ok(std::sync::Arc::new(
            PostgresStore::open(db, pool_size).await?,
        ))
    } else {
        let path = std::path::PathBuf::from(db);
        Ok(std::sync::Arc::new(SqliteStore::open(&path).await?))
    }
}

/// How many rows of each kind a migration copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Copied {
    /// Clients.
    pub clients: usize,
    /// Client secret digests.
    pub secrets: usize,
    /// API keys.
    pub api_keys: usize,
    /// Token revocations.
    pub revocations: usize,
    /// Signing-key records.
    pub signing_keys: usize,
    /// Audit-log entries (the migration's own entry not counted).
    pub audit_entries: usize,
    /// Trusted issuers.
    pub federation_issuers: usize,
    /// Federation rules.
    pub federation_rules: usize,
}

impl Dump {
    /// Row counts.
    pub fn counts(&self) -> Copied {
        Copied {
            clients: self.clients.len(),
            secrets: self.secrets.len(),
            api_keys: self.api_keys.len(),
            revocations: self.revocations.len(),
            signing_keys: self.signing_keys.len(),
            audit_entries: self.audit.len(),
            federation_issuers: self.federation.issuers.len(),
            federation_rules: self.federation.rules.len(),
        }
    }
}

/// Copies everything in `from` into the unused store `to` in one transaction,
/// then reads `to` back and checks that every client, secret digest, API key
/// and revocation arrived unchanged. `None` if `to` already holds data.
pub async fn copy(from: &dyn Store, to: &dyn Store, audit: &AuditEntry) -> Result<Option<Copied>> {
    let dump = from.export().await?;
    if !to.import(&dump, audit).await? {
        return Ok(None);
    }
    let back = to.export().await?;
    let same_keys = |a: &[ApiKeyRecord], b: &[ApiKeyRecord]| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                (x.id.as_str(), &x.digest, x.revoked_at, x.expires_at)
                    == (y.id.as_str(), &y.digest, y.revoked_at, y.expires_at)
            })
    };
    let mut clients = back.clients.clone();
    clients.sort_by(|a, b| a.id.cmp(&b.id));
    let mut wanted = dump.clients.clone();
    wanted.sort_by(|a, b| a.id.cmp(&b.id));
    if clients != wanted
        || back.secrets != dump.secrets
        || !same_keys(&back.api_keys, &dump.api_keys)
        || back.revocations != dump.revocations
        || back.audit.len() < dump.audit.len()
        || back.federation != dump.federation
    {
        return Err(StoreError::Corrupt(
            "the copy read back differs from the source".into(),
        ));
    }
    Ok(Some(dump.counts()))
}

/// A client and its secrets from two queries that both run whether the
/// client exists or not (see [`Store::load_client`]).
pub(crate) async fn load_entry(
    client: impl std::future::Future<Output = Result<Option<Client>>>,
    secrets: impl std::future::Future<Output = Result<Vec<ClientSecretRecord>>>,
) -> Result<(Option<Client>, Vec<ClientSecretRecord>)> {
    Ok(client_entry(client.await?, secrets.await?))
}

/// A client with the secrets read for its id: none when there is no client.
pub(crate) fn client_entry(
    client: Option<Client>,
    mut secrets: Vec<ClientSecretRecord>,
) -> (Option<Client>, Vec<ClientSecretRecord>) {
    if client.is_none() {
        secrets.clear();
    }
    (client, secrets)
}

/// Result of storage calls.
pub type Result<T> = std::result::Result<T, StoreError>;

/// One stored client secret with its client, as a migration copies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// The client.
    pub client_id: String,
    /// SHA-256 of the secret.
    pub digest: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
    /// End of its validity, if any.
    pub expires_at: Option<i64>,
}

/// One remembered token revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRecord {
    /// The token's `jti`.
    pub jti: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Its expiry: the revocation is forgotten after it.
    pub expires_at: i64,
    /// When it was revoked.
    pub revoked_at: i64,
}

/// Everything a deployment stores, as `tollgate migrate` copies it from one
/// backend to another. Only digests of secrets and keys: nothing to redact.
#[derive(Debug, Clone, Default)]
pub struct Dump {
    /// Clients.
    pub clients: Vec<Client>,
    /// Client secret digests, live and recently ended.
    pub secrets: Vec<SecretRow>,
    /// API keys (digests), revoked ones included.
    pub api_keys: Vec<ApiKeyRecord>,
    /// Token revocations not yet expired.
    pub revocations: Vec<RevocationRecord>,
    /// Signing-key metadata (the PEM files are copied separately).
    pub signing_keys: Vec<SigningKeyRecord>,
    /// The audit log, with its numbers.
    pub audit: Vec<AuditEntry>,
    /// Trusted issuers and federation rules.
    pub federation: Federation,
}

/// The namespace of a one-time value: whose `jti` it is. Stored as one
/// owner string per namespace (the client id; `dpop:` and the key's
/// thumbprint; `federation:` and the issuer), as every release has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneTime<'a> {
    /// A client assertion's `jti`, per client (RFC 7523 §3 item 7).
    Assertion {
        /// The client.
        client_id: &'a str,
    },
    /// A DPoP proof's `jti`, per key (RFC 9449 §11.1).
    DpopProof {
        /// The key's JWK thumbprint.
        jkt: &'a str,
    },
    /// A `single_use` federation token's `jti`, per issuer.
    FederationToken {
        /// The issuer.
        issuer: &'a str,
    },
}

impl OneTime<'_> {
    /// The owner string the store keeps.
    pub fn owner(&self) -> String {
        match self {
            OneTime::Assertion { client_id } => (*client_id).to_string(),
            OneTime::DpopProof { jkt } => format!("dpop:{jkt}"),
            OneTime::FederationToken { issuer } => format!("federation:{issuer}"),
        }
    }
}

/// What creating an API key can run into.
#[derive(Debug, PartialEq, Eq)]
pub enum ApiKeyCreate {
    /// Stored.
    Created,
    /// The client already holds this many active keys.
    LimitReached(u32),
    /// The client does not exist.
    NoSuchClient,
}

/// Clients and their secrets (digests only).
#[async_trait::async_trait]
pub trait ClientStore: Send + Sync {
    /// Stores a new client with its first secret (none for a client that
    /// authenticates with its keys).
    async fn create_client(
        &self,
        client: &Client,
        secret_digest: Option<&[u8]>,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Stores many clients, each with one secret digest, in one transaction,
    /// with one audit entry for the whole import (seeding and migration).
    async fn import_clients(&self, clients: &[(Client, Vec<u8>)], audit: &AuditEntry)
        -> Result<()>;
    /// One client.
    async fn get_client(&self, id: &str) -> Result<Option<Client>>;
    /// A client and its secrets live at `now`, with the same work whether
    /// the client exists or not, so that the first lookup of an unknown id
    /// costs what the first lookup of a known one does (RFC 6749 §5.2
    /// answers both with `invalid_client`; their cost must not tell them
    /// apart either). Both backends read a client row, the asked one or a
    /// decoy, and its secrets in one statement
    /// ([`codec::client_with_secrets_sql`]); this default runs two.
    async fn load_client(
        &self,
        id: &str,
        now: i64,
    ) -> Result<(Option<Client>, Vec<ClientSecretRecord>)> {
        load_entry(self.get_client(id), self.live_secrets(id, now)).await
    }
    /// Clients ordered by id, after `after`, at most `limit`.
    async fn list_clients(&self, after: Option<&str>, limit: u32) -> Result<Vec<Client>>;
    /// Overwrites the mutable fields of an existing client; false if it does not exist.
    async fn update_client(&self, client: &Client, audit: &AuditEntry) -> Result<bool>;
    /// Deletes a client with its secrets and keys; false if it did not exist.
    async fn delete_client(&self, id: &str, audit: &AuditEntry) -> Result<bool>;
    /// Secrets of a client still valid at `now`.
    async fn live_secrets(&self, client_id: &str, now: i64) -> Result<Vec<ClientSecretRecord>>;
    /// Adds a secret; every older live secret expires at `old_expire_at` at the
    /// latest, and at most `max_live` secrets stay live. False if no such client.
    async fn rotate_secret(
        &self,
        client_id: &str,
        digest: &[u8],
        now: i64,
        old_expire_at: i64,
        max_live: usize,
        audit: &AuditEntry,
    ) -> Result<bool>;
}

/// API keys (digests only) and their uses.
#[async_trait::async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores an API key unless the client holds `max_active` active keys already.
    async fn create_api_key(
        &self,
        key: &ApiKeyRecord,
        max_active: u32,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<ApiKeyCreate>;
    /// The key with this digest.
    async fn find_api_key(&self, digest: &[u8]) -> Result<Option<ApiKeyRecord>>;
    /// The key with this id.
    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>>;
    /// Keys of a client, newest first.
    async fn list_api_keys(&self, client_id: &str) -> Result<Vec<ApiKeyRecord>>;
    /// Revokes a key; false if it does not exist or is already revoked.
    async fn revoke_api_key(&self, id: &str, now: i64, audit: &AuditEntry) -> Result<bool>;
    /// Records the last use of keys, in one transaction.
    async fn touch_api_keys(&self, uses: &[(String, i64)]) -> Result<()>;
}

/// Revoked access tokens, remembered until they expire.
#[async_trait::async_trait]
pub trait RevocationStore: Send + Sync {
    /// Remembers a revoked access token until it expires.
    async fn revoke_token(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Whether the token with this `jti` is revoked.
    async fn is_token_revoked(&self, jti: &str) -> Result<bool>;
    /// Forgets revocations of tokens expired before `now`, and used client
    /// assertions expired by then; returns how many revocations.
    async fn prune_revocations(&self, now: i64) -> Result<usize>;
}

/// One-time values: client assertions, DPoP proofs and federation tokens, each used once (RFC 7523 §3 item 7, RFC 9449 §11.1).
#[async_trait::async_trait]
pub trait OneTimeStore: Send + Sync {
    /// Records a one-time `jti` in its namespace until `expires_at`, the
    /// last instant it could be accepted (an assertion's `exp` + skew, a
    /// proof's `iat` + window); false when the same namespace already used
    /// it and it has not expired by `now` (a replay, RFC 7523 §3 item 7,
    /// RFC 9449 §11.1). Shared by every process on the database.
    async fn use_once(
        &self,
        what: OneTime<'_>,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool>;
}

/// Signing-key records (the private keys are files or elsewhere).
#[async_trait::async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Every signing key's metadata.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// Records a new signing key.
    async fn insert_signing_key(
        &self,
        key: &SigningKeyRecord,
        audit: Option<&AuditEntry>,
    ) -> Result<()>;
    /// Retires a signing key at `at`; false if unknown or already retired.
    async fn retire_signing_key(&self, kid: &str, at: i64, audit: &AuditEntry) -> Result<bool>;
    /// Marks a signing key compromised at `at`, retiring it then at the
    /// latest; false if unknown or already compromised.
    async fn compromise_signing_key(&self, kid: &str, at: i64, audit: &AuditEntry) -> Result<bool>;
}

/// Trusted issuers and federation rules.
#[async_trait::async_trait]
pub trait FederationStore: Send + Sync {
    /// Every trusted issuer and federation rule, rules oldest first.
    async fn federation(&self) -> Result<Federation>;
    /// Adds a trusted issuer; false when its issuer identifier is taken.
    async fn add_federation_issuer(&self, i: &FederationIssuer, audit: &AuditEntry)
        -> Result<bool>;
    /// Removes a trusted issuer with its rules; false when there is none.
    async fn remove_federation_issuer(&self, id: &str, audit: &AuditEntry) -> Result<bool>;
    /// Adds a rule; false when its issuer or its client does not exist.
    async fn add_federation_rule(&self, r: &FederationRule, audit: &AuditEntry) -> Result<bool>;
    /// Removes a rule; false when there is none.
    async fn remove_federation_rule(&self, id: &str, audit: &AuditEntry) -> Result<bool>;
    /// Stores what URL clients of a host may get (insert or replace).
    async fn put_cimd_host(&self, h: &crate::domain::CimdHost, audit: &AuditEntry) -> Result<()>;
    /// Removes a URL clients' host; false when there is none.
    async fn remove_cimd_host(&self, host: &str, audit: &AuditEntry) -> Result<bool>;
    /// Blocks (or unblocks) a URL client; false when nothing changed.
    async fn set_cimd_block(
        &self,
        url: &str,
        blocked: bool,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool>;
}

/// The audit log.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an audit entry on its own.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// Audit entries with id above `after`, oldest first, at most `limit`.
    async fn list_audit(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>>;
}

/// Whether the database answers and takes writes, and the outage grace.
#[async_trait::async_trait]
pub trait HealthStore: Send + Sync {
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// Sets the outage grace (seconds, `TOLLGATE_OUTAGE_GRACE`): how long
    /// after its last confirmed-fresh moment a shared database's instance
    /// keeps answering from its cache while the database is unreachable.
    /// An embedded database has no outage apart from the process: no-op.
    fn set_outage_grace(&self, _seconds: i64) {}
    /// While the database is unreachable and the grace lasts: the seconds
    /// left of it. `None` otherwise (reachable, no grace, or spent).
    fn outage_grace_left(&self) -> Option<i64> {
        None
    }
    /// Whether the database takes a write: one small committed write to a
    /// table of its own that signals no change to caches.
    async fn probe_write(&self, now: i64) -> Result<()>;
}

/// What changed: the change marker and log every cache reads, and the external marker polled for changes made outside Tollgate.
#[async_trait::async_trait]
pub trait ChangeFeed: Send + Sync {
    /// A value that moves by one with every write made through any Tollgate
    /// process (on PostgreSQL, with every notification of one); cheap enough
    /// to read on every request, and never blocks.
    fn change_marker(&self) -> i64;
    /// What the writes numbered `after + 1 ..= upto` by the change marker
    /// changed, or `None` when this process cannot tell (another process
    /// wrote): then anything may have changed. Never blocks.
    fn changes(&self, _after: i64, _upto: i64) -> Option<Vec<Change>> {
        None
    }
    /// A value that changes when something the change marker did not report
    /// was committed (a write outside Tollgate, a lost notification); polled
    /// in the background.
    async fn external_change_marker(&self) -> Result<i64>;
}

/// Everything stored, for `tollgate migrate`.
#[async_trait::async_trait]
pub trait DumpStore: Send + Sync {
    /// Everything stored, for `tollgate migrate`.
    async fn export(&self) -> Result<Dump>;
    /// Loads a [`Dump`] into an unused database in one transaction, with
    /// `audit` recording the migration; false (and nothing written) if the
    /// database already holds clients, keys or revocations.
    async fn import(&self, dump: &Dump, audit: &AuditEntry) -> Result<bool>;
}

/// The storage interface the rest of Tollgate uses: every role below, each
/// at most 20 methods, which each backend implements; a caller names the
/// roles it uses. Database calls are
/// async: SQLite runs them on the runtime's blocking pool, PostgreSQL on its
/// async driver. The change marker and the change log are read without
/// waiting, so a cache can check its freshness on every read.
pub trait Store:
    ClientStore
    + ApiKeyStore
    + RevocationStore
    + OneTimeStore
    + SigningKeyStore
    + FederationStore
    + AuditStore
    + HealthStore
    + ChangeFeed
    + DumpStore
    + Send
    + Sync
    + 'static
{
    /// The console's queries: login links, sessions, and searches that no
    /// cache serves. A cache in front hands them on to its backend.
    fn console(&self) -> &dyn ConsoleStore;
    /// Shared Signals streams and their events; nothing there is cached.
    fn signals(&self) -> &dyn SignalStore;
    /// The fleet-wide token quota this backend keeps, if it keeps one (an
    /// optional capability: SQLite is one machine, where the in-memory
    /// limiter decides). Never blocks.
    fn shared_quota(&self) -> Option<&dyn SharedQuota> {
        None
    }
}

/// A `LIKE` pattern matching text that contains `query`: `%`, `_` and the
/// escape character `\\` in the query match only themselves.
pub fn contains_pattern(query: &str) -> String {
    let mut p = String::with_capacity(query.len() + 2);
    p.push('%');
    for c in query.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// What the web console needs of the store, apart from the admin operations
/// it shares with the API and the command line: login links and sessions
/// (stored as digests only), and searches. Nothing here is cached.
/// Shared Signals (SSF 1.0) streams and the SETs stored for them until
/// delivered or acknowledged. Nothing here is cached: the transmitter's
/// loop and the receivers' calls read the database.
#[async_trait::async_trait]
pub trait SignalStore: Send + Sync {
    /// Stores a new stream, with its audit entry.
    async fn create_stream(&self, stream: &SsfStream, audit: &AuditEntry) -> Result<()>;
    /// The stream with this id.
    async fn get_stream(&self, id: &str) -> Result<Option<SsfStream>>;
    /// Every stream, oldest first.
    async fn list_streams(&self) -> Result<Vec<SsfStream>>;
    /// Writes a stream's configuration, status and delivery state; false
    /// if it is gone.
    async fn update_stream(&self, stream: &SsfStream, audit: Option<&AuditEntry>) -> Result<bool>;
    /// Deletes a stream and its events; false if there was none.
    async fn delete_stream(&self, id: &str, audit: &AuditEntry) -> Result<bool>;
    /// Stores events, each once per stream and source (instances fanning
    /// out the same action store it once), and moves the audit cursor to
    /// `cursor` when it is ahead; how many events were new.
    async fn add_signals(&self, events: &[NewSignal], cursor: Option<i64>) -> Result<usize>;
    /// The audit-log id up to which actions were turned into events.
    async fn signal_cursor(&self) -> Result<Option<i64>>;
    /// Takes the stream for delivery until `until` unless another instance
    /// holds it; whether this one (`owner`) holds it now.
    async fn lease_stream(&self, id: &str, owner: &str, now: i64, until: i64) -> Result<bool>;
    /// The stream's events not yet delivered or acknowledged, oldest first.
    async fn pending_signals(&self, stream_id: &str, limit: u32) -> Result<Vec<PendingSignal>>;
    /// Marks events delivered (or acknowledged) by `jti`; how many were.
    async fn mark_delivered(&self, stream_id: &str, jtis: &[String], now: i64) -> Result<usize>;
    /// Drops every event the stream still holds (a disabled stream keeps
    /// nothing), in one statement; how many.
    async fn discard_signals(&self, stream_id: &str, now: i64) -> Result<usize>;
    /// Undelivered events per stream.
    async fn signal_backlog(&self) -> Result<Vec<(String, i64)>>;
    /// Forgets events delivered before `before`; how many.
    async fn prune_signals(&self, before: i64) -> Result<usize>;
}

/// A token quota counted in the database, so that it holds across a fleet.
#[async_trait::async_trait]
pub trait SharedQuota: Send + Sync {
    /// Counts a token against the client's quota and decides it, with the
    /// same rule as [`crate::limits::Limiter::hit`].
    async fn hit(
        &self,
        client_id: &str,
        limit: u64,
        window: i64,
        ban: i64,
        now: i64,
    ) -> Result<Decision>;
}

#[async_trait::async_trait]
pub trait ConsoleStore: Send + Sync {
    /// Records a new login link with its audit entry.
    async fn create_login_link(
        &self,
        session: &ConsoleSession,
        link_digest: &[u8],
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Turns an unopened, unexpired, unrevoked link into a session in one
    /// statement, so that a link opens at most one session; writes `audit`
    /// (whose actor the caller cannot know yet: `console:<id>` is set here).
    async fn open_session(
        &self,
        link_digest: &[u8],
        session_digest: &[u8],
        now: i64,
        audit: &AuditEntry,
    ) -> Result<Option<ConsoleSession>>;
    /// The session whose cookie has this digest.
    async fn find_session(&self, session_digest: &[u8]) -> Result<Option<ConsoleSession>>;
    /// Notes a request of the session at `now`.
    async fn touch_session(&self, id: &str, now: i64) -> Result<()>;
    /// Every link and session, newest first.
    async fn list_sessions(&self) -> Result<Vec<ConsoleSession>>;
    /// Revokes a link or session; false if none is live under this id.
    async fn revoke_session(&self, id: &str, now: i64, audit: &AuditEntry) -> Result<bool>;
    /// Forgets links and sessions made before `before`.
    async fn prune_sessions(&self, before: i64) -> Result<usize>;
    /// Clients whose id or name contains `query` (case-insensitive), ordered
    /// by id, after `after`, at most `limit`.
    async fn search_clients(
        &self,
        query: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Client>>;
    /// Audit entries matching `filter`, newest first, below id `before`.
    async fn search_audit(
        &self,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>>;
}
