//! The web console's use cases: login links, sessions, CSRF tokens,
//! searches and the overview. The console's actions themselves are the admin
//! use cases in `admin` and `signing`, called with the session as actor.

use crate::store::ClientStore;
use serde_json::json;

use super::error::{ErrorCode, ServiceError};
use super::support::ADMIN_SCOPE;
use std::sync::Arc;

use crate::config::Config;
use crate::domain::{
    AuditEntry, AuditFilter, Client, ConsoleSession, ConsoleSessionState, CLI_ACTOR,
};
use crate::metrics::Metrics;
use crate::metrics::Totals;
use crate::secret::{
    self, SecretString, CONSOLE_SESSION_ID_PREFIX, CONSOLE_SESSION_PREFIX, LOGIN_LINK_PREFIX,
};
use crate::store::CachedStore;

/// A session's last request is written at most this often (seconds), so
/// that page views are not each a write.
const TOUCH_EVERY: i64 = 60;

/// A new login link: its record, and the token shown once in its URL.
#[derive(Debug)]
pub struct LoginLink {
    /// The link's record, which becomes the session.
    pub session: ConsoleSession,
    /// The single-use token.
    pub token: SecretString,
    /// The URL to open: the issuer's `/console/login?token=…`.
    pub url: SecretString,
}

/// The console's overview: figures since start and the last hour, from this
/// process's metrics registry.
#[derive(Debug, Clone)]
pub struct Overview {
    /// The counters now.
    pub now: Totals,
    /// The 99th percentile latency over the last hour (bucket bound, s).
    pub p99: Option<f64>,
    /// Tokens issued and failed authentications in each of the last 60
    /// minutes, oldest first (fewer just after start).
    pub minutes: Vec<(u64, u64)>,
}

/// The CSRF token of a session: SHA-256 of its cookie, in base64url. It
/// cannot be forged without the cookie, which pages cannot read
/// (`HttpOnly`), and it reveals nothing of the cookie.
pub fn csrf_token(session_token: &str) -> String {
    use base64::Engine;
    let d = secret::digest(format!("tollgate-console-csrf:{session_token}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
}

/// Whether `given` is the session's CSRF token (constant time).
pub fn csrf_ok(session_token: &str, given: &str) -> bool {
    secret::constant_time_eq(csrf_token(session_token).as_bytes(), given.as_bytes())
}

fn no_session() -> ServiceError {
    ServiceError::new(
        ErrorCode::InvalidToken,
        "no console session: open a new login link",
    )
}

impl LoginLink {
    /// The link as the admin API and the command line show it, once:
    /// `{"id", "url", "expires_at"}`.
    pub fn view(&self) -> serde_json::Value {
        json!({
            "id": self.session.id,
            "url": self.url.expose(),
            "expires_at": self.session.link_expires_at,
        })
    }
}

/// A link or session as the admin API and the command line show it: never
/// a digest, with its state and when it stops being usable.
pub fn session_view(s: &ConsoleSession, now: i64) -> serde_json::Value {
    let mut v = json!(s);
    v["state"] = json!(s.state(now).as_str());
    v["expires_at"] = json!(s.expires_at());
    v
}

/// The console's use cases as one component: login links, sessions, its
/// searches and the overview. It owns what they need (the configuration,
/// the store, the metrics); `App` composes it, and the console's actions
/// themselves are the admin use cases.
pub struct Console {
    /// Validated configuration (the issuer is a link's base).
    config: Arc<Config>,
    /// The store, behind its cache.
    store: Arc<CachedStore>,
    /// Prometheus metrics of this process (the overview's figures).
    metrics: Arc<Metrics>,
}

impl Console {
    /// A console over these parts.
    pub(super) fn new(config: Arc<Config>, store: Arc<CachedStore>, metrics: Arc<Metrics>) -> Self {
        Console {
            config,
            store,
            metrics,
        }
    }

    /// The same console under another configuration.
    pub(super) fn with_config(&self, config: Arc<Config>) -> Console {
        Console::new(config, self.store.clone(), self.metrics.clone())
    }

    /// Makes a single-use login link valid for 10 minutes; the audit entry
    /// names `actor` (an admin client or `cli`).
    /// `base_url` replaces the issuer in the URL (a server behind another
    /// name, or one whose port the command line cannot know).
    pub async fn create_login_link(
        &self,
        actor: &str,
        base_url: Option<&str>,
        now: i64,
    ) -> Result<LoginLink, ServiceError> {
        if !self.config.console {
            return Err(ServiceError::invalid_request(
                "the console is switched off (TOLLGATE_CONSOLE=off): no login links are made",
            ));
        }
        let base = base_url
            .unwrap_or(&self.config.issuer)
            .trim_end_matches('/');
        if !crate::config::is_base_url(base) || base.len() > 2048 {
            return Err(ServiceError::invalid_request(
                "the base URL must be an http(s) URL without query or fragment",
            ));
        }
        let session = ConsoleSession {
            id: secret::generate_id(CONSOLE_SESSION_ID_PREFIX),
            created_by: actor.to_string(),
            created_at: now,
            link_expires_at: now + ConsoleSession::LINK_TTL,
            opened_at: None,
            last_seen_at: None,
            revoked_at: None,
        };
        let token = secret::generate(LOGIN_LINK_PREFIX);
        let audit = AuditEntry::new(
            now,
            actor,
            "console.login_link",
            Some(&session.id),
            json!({"expires_at": session.link_expires_at}),
        );
        self.store
            .backend()
            .console()
            .create_login_link(&session, &token.digest(), &audit)
            .await?;
        let url = SecretString::new(format!("{base}/console/login?token={}", token.expose()));
        Ok(LoginLink {
            session,
            token,
            url,
        })
    }

    /// Opens a session with a login link's token: once, within its 10
    /// minutes. Returns the session and its cookie value, shown once.
    pub async fn open_console_session(
        &self,
        link_token: &str,
        now: i64,
    ) -> Result<(ConsoleSession, SecretString), ServiceError> {
        if !link_token.starts_with(LOGIN_LINK_PREFIX) || link_token.len() > 128 {
            return Err(no_session());
        }
        let cookie = secret::generate(CONSOLE_SESSION_PREFIX);
        let audit = AuditEntry::new(now, "console", "console.login", None, json!({}));
        let session = self
            .store
            .backend()
            .console()
            .open_session(
                &secret::digest(link_token.as_bytes()),
                &cookie.digest(),
                now,
                &audit,
            )
            .await?
            .ok_or_else(no_session)?;
        if !self.maker_may_administer(&session.created_by).await? {
            // The link was used up by the attempt: nothing is left to retry.
            return Err(no_session());
        }
        Ok((session, cookie))
    }

    /// The active session behind a cookie, its last request noted.
    pub async fn console_session(
        &self,
        cookie: &str,
        now: i64,
    ) -> Result<ConsoleSession, ServiceError> {
        if !cookie.starts_with(CONSOLE_SESSION_PREFIX) || cookie.len() > 128 {
            return Err(no_session());
        }
        let session = self
            .store
            .backend()
            .console()
            .find_session(&secret::digest(cookie.as_bytes()))
            .await?
            .ok_or_else(no_session)?;
        if session.state(now) != ConsoleSessionState::Active
            || !self.maker_may_administer(&session.created_by).await?
        {
            return Err(no_session());
        }
        if session.last_seen_at.unwrap_or(0) + TOUCH_EVERY <= now {
            self.store
                .backend()
                .console()
                .touch_session(&session.id, now)
                .await?;
        }
        Ok(session)
    }

    /// Whether the maker of a login link (and so of its session) may still
    /// administer: the command line always; an admin client only while it
    /// exists, is enabled and holds `tollgate:admin`. Checked on every
    /// request, from the client cache, which a change on any instance of a
    /// fleet reaches within a second: a session cannot outlive its maker's
    /// rights (issue 23, N2).
    async fn maker_may_administer(&self, created_by: &str) -> Result<bool, ServiceError> {
        if created_by == CLI_ACTOR {
            return Ok(true);
        }
        Ok(self
            .store
            .get_client(created_by)
            .await?
            .is_some_and(|c| !c.disabled && c.scopes.iter().any(|s| s == ADMIN_SCOPE)))
    }

    /// Every login link and session, newest first.
    pub async fn list_console_sessions(&self) -> Result<Vec<ConsoleSession>, ServiceError> {
        Ok(self.store.backend().console().list_sessions().await?)
    }

    /// Revokes a link or session (signing out is a session revoking itself).
    pub async fn revoke_console_session(
        &self,
        actor: &str,
        id: &str,
        now: i64,
    ) -> Result<(), ServiceError> {
        let audit = AuditEntry::new(now, actor, "console.session.revoke", Some(id), json!({}));
        if !self
            .store
            .backend()
            .console()
            .revoke_session(id, now, &audit)
            .await?
        {
            return Err(ServiceError::not_found(
                "no live console session or link with this id",
            ));
        }
        Ok(())
    }

    /// Forgets links and sessions older than two days: none of them can be
    /// used any more (a session ends 24 hours after its link was opened).
    pub async fn prune_console_sessions(&self, now: i64) -> Result<usize, ServiceError> {
        let before = now - 2 * ConsoleSession::ABSOLUTE_TIMEOUT;
        Ok(self
            .store
            .backend()
            .console()
            .prune_sessions(before)
            .await?)
    }

    /// Clients whose id or name contains `query`, ignoring case; an empty
    /// query lists them all. Ordered by id, after `after`.
    pub async fn search_clients(
        &self,
        query: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Client>, ServiceError> {
        let query = query.trim();
        if query.is_empty() {
            super::error::no_nul(after.unwrap_or(""), "the cursor")?;
            return Ok(self.store.list_clients(after, limit.clamp(1, 1000)).await?);
        }
        super::error::no_nul(query, "the search text")?;
        super::error::no_nul(after.unwrap_or(""), "the cursor")?;
        if query.len() > 256 {
            return Err(ServiceError::invalid_request(
                "search text longer than 256 bytes",
            ));
        }
        Ok(self
            .store
            .backend()
            .console()
            .search_clients(query, after, limit.clamp(1, 1000))
            .await?)
    }

    /// Audit entries matching `filter`, newest first, below id `before`.
    pub async fn search_audit(
        &self,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, ServiceError> {
        for f in [&filter.actor, &filter.action, &filter.target]
            .into_iter()
            .flatten()
        {
            if f.len() > 256 {
                return Err(ServiceError::invalid_request(
                    "filter longer than 256 bytes",
                ));
            }
            super::error::no_nul(f, "a filter")?;
        }
        Ok(self
            .store
            .backend()
            .console()
            .search_audit(filter, before, limit.clamp(1, 1000))
            .await?)
    }

    /// The overview's figures now and over the last hour.
    pub fn overview(&self, now: i64) -> Overview {
        let totals = self.metrics.totals(now);
        let history = self.metrics.history();
        let mut points: Vec<&Totals> = history.iter().filter(|t| t.at >= now - 3600).collect();
        let hour_ago = points
            .first()
            .map_or_else(Totals::default, |t| (*t).clone());
        points.push(&totals);
        let minutes = points
            .windows(2)
            .map(|w| {
                (
                    w[1].issued.saturating_sub(w[0].issued),
                    w[1].failed_auth.saturating_sub(w[0].failed_auth),
                )
            })
            .collect();
        Overview {
            p99: totals.p99_since(&hour_ago),
            now: totals,
            minutes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let a = "tgcon_aaaa";
        let t = csrf_token(a);
        assert!(csrf_ok(a, &t));
        assert!(!csrf_ok("tgcon_bbbb", &t));
        assert!(!csrf_ok(a, ""));
        assert!(!t.contains("aaaa"));
    }
}
