//! URL client ids (Client ID Metadata Documents,
//! draft-ietf-oauth-client-id-metadata-document): a `client_id` that is an
//! `https` URL on an allowed host (`TOLLGATE_CIMD_ALLOWED_HOSTS`) is
//! resolved by fetching that URL with the safe fetcher and keeping the
//! document per its `Cache-Control` (60 s to 24 h). What such a client may
//! get is an admin's decision per host (`/admin/cimd/hosts`); a URL can be
//! blocked with immediate effect, fleet-wide (the federation snapshot, with
//! its change notification). Every fetch is audited by URL.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::admin::{check_audiences, invalid, normalize_scopes, Admin};
use super::authenticator::Authenticator;
use super::families::AdminError;
use crate::domain::{AuditEntry, CimdBlock, CimdHost, Client};
use crate::oauth::cimd::{self, Document};
use crate::store::{FederationStore, StoreError};

impl Authenticator {
    /// The client `client_id` names: a URL client resolved from its
    /// document when it is one, else the registered client.
    pub(super) async fn find_client(
        &self,
        client_id: &str,
        now: i64,
    ) -> Result<Option<Arc<Client>>, StoreError> {
        match self.url_client_host(client_id) {
            Some(host) => Ok(self.url_client(client_id, &host, now).await?.map(Arc::new)),
            None => self.store.client(client_id).await,
        }
    }

    fn url_client_host(&self, client_id: &str) -> Option<String> {
        cimd::url_client_host(
            client_id,
            &self.config.cimd_allowed_hosts,
            self.config.fetch_allow_local,
        )
    }

    fn note(&self, result: &str) {
        self.metrics.cimd.with_label_values(&[result]).inc();
    }

    /// The policy of a URL client's host, or why it has none: blocked, or
    /// no policy for its host (the metric's result).
    async fn url_policy(
        &self,
        url: &str,
        host: &str,
    ) -> Result<Result<CimdHost, &'static str>, StoreError> {
        let fed = self.store.federation_cached().await?;
        if fed.cimd_blocks.iter().any(|b| b.url == url) {
            return Ok(Err("blocked"));
        }
        Ok(cimd::host_policy(&fed.cimd_hosts, host)
            .cloned()
            .ok_or("no_policy"))
    }

    /// A URL client: not blocked, its host under a policy, its document
    /// fetched (or kept) and valid. `None`, logged and counted, otherwise.
    async fn url_client(
        &self,
        url: &str,
        host: &str,
        now: i64,
    ) -> Result<Option<Client>, StoreError> {
        let policy = match self.url_policy(url, host).await? {
            Ok(p) => p,
            Err(why) => {
                log::info!("URL client {url:?} refused ({why}; host {host:?}, /admin/cimd)");
                self.note(why);
                return Ok(None);
            }
        };
        let policy = &policy;
        if let Some(doc) = self.cimd_docs.get(url, now) {
            self.note("cached");
            return Ok(Some(cimd::client(url, &doc, policy)));
        }
        let (doc, max_age) = match self.fetcher.json_with_max_age(url).await {
            Ok(d) => d,
            Err(e) => {
                log::warn!("URL client {url:?}: its document could not be fetched: {e}");
                self.note("fetch_failed");
                self.audit_fetch(url, now, json!({"result": "fetch_failed"}))
                    .await;
                return Ok(None);
            }
        };
        let doc = match cimd::check_document(url, &doc) {
            Ok(d) => d,
            Err(why) => {
                log::info!("URL client {url:?}: {why}");
                self.note("invalid");
                self.audit_fetch(url, now, json!({"result": "invalid", "reason": why}))
                    .await;
                return Ok(None);
            }
        };
        let keep = cimd::keep_for(max_age);
        self.cimd_docs.put(url, doc.clone(), now + keep as i64, now);
        // A new document with other keys: the key set is keyed by its
        // inline JSON or its URI, so the old one is not used for it.
        self.note("fetched");
        self.audit_fetch(url, now, json!({"result": "fetched", "cached_for": keep}))
            .await;
        Ok(Some(cimd::client(url, &doc, policy)))
    }

    async fn audit_fetch(&self, url: &str, now: i64, detail: serde_json::Value) {
        let entry = AuditEntry::new(now, "cimd", "cimd.document.fetch", Some(url), detail);
        if let Err(e) = self.store.append_audit(&entry).await {
            log::warn!("the audit entry of a URL client's fetch was not written: {e}");
        }
    }

    /// For introspection: a URL client's token stays active while the URL
    /// is not blocked and its host is allowed and under a policy (whose
    /// scopes it then holds). Nothing is fetched.
    pub(super) async fn url_client_live(
        &self,
        client_id: &str,
        now: i64,
    ) -> Result<Option<Arc<Client>>, StoreError> {
        let Some(host) = self.url_client_host(client_id) else {
            return Ok(None);
        };
        let Ok(policy) = self.url_policy(client_id, &host).await? else {
            return Ok(None);
        };
        let doc = self.cimd_docs.get(client_id, now).unwrap_or(Document {
            name: None,
            keys: crate::domain::KeySource::Uri(client_id.to_string()),
        });
        Ok(Some(Arc::new(cimd::client(client_id, &doc, &policy))))
    }
}

/// A URL clients' host policy to set (`POST /admin/cimd/hosts`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCimdHost {
    /// A host name, or `*.` and a suffix.
    pub host: String,
    /// Scopes its clients may get (never `tollgate:*`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Audiences its clients may get; the first is the default.
    #[serde(default)]
    pub audiences: Vec<String>,
}

/// The URL clients' settings: hosts and blocks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CimdSettings {
    /// Host policies.
    pub hosts: Vec<CimdHost>,
    /// Blocked URLs.
    pub blocks: Vec<CimdBlock>,
}

impl Admin {
    /// The host policies and the blocked URLs.
    pub async fn cimd(&self) -> Result<CimdSettings, AdminError> {
        let fed = self.store.federation().await?;
        Ok(CimdSettings {
            hosts: fed.cimd_hosts,
            blocks: fed.cimd_blocks,
        })
    }

    /// Sets what URL clients of a host may get (replacing what it had).
    pub async fn set_cimd_host(
        &self,
        actor: &str,
        input: NewCimdHost,
        now: i64,
    ) -> Result<CimdHost, AdminError> {
        let host = input.host.trim().to_ascii_lowercase();
        if !cimd::is_host_pattern(&host) {
            return Err(invalid(
                "host must be a host name such as agents.example.com, or *.example.com",
            ));
        }
        let scopes = normalize_scopes(&input.scopes)?;
        if scopes.iter().any(|s| crate::oauth::grant::is_own_scope(s)) {
            return Err(invalid(
                "URL clients never get tollgate:* scopes: register a client for that",
            ));
        }
        let audiences = check_audiences(&input.audiences)?;
        if audiences.contains(&self.config.issuer) {
            return Err(invalid(
                "URL clients never get this server's issuer as an audience",
            ));
        }
        let record = CimdHost {
            host,
            scopes,
            audiences,
            created_at: now,
        };
        let audit = AuditEntry::new(
            now,
            actor,
            "cimd.host.set",
            Some(&record.host),
            json!({"scopes": record.scopes, "audiences": record.audiences}),
        );
        self.store.put_cimd_host(&record, &audit).await?;
        Ok(record)
    }

    /// Removes a host's policy: its URL clients get nothing from now on.
    pub async fn remove_cimd_host(
        &self,
        actor: &str,
        host: &str,
        now: i64,
    ) -> Result<(), AdminError> {
        let host = host.trim().to_ascii_lowercase();
        let audit = AuditEntry::new(now, actor, "cimd.host.remove", Some(&host), json!({}));
        if !self.store.remove_cimd_host(&host, &audit).await? {
            return Err(AdminError::not_found("no policy for that host"));
        }
        Ok(())
    }

    /// Blocks (or unblocks) a URL client, at once and fleet-wide.
    pub async fn block_cimd(
        &self,
        actor: &str,
        url: &str,
        blocked: bool,
        now: i64,
    ) -> Result<bool, AdminError> {
        let url = url.trim();
        if url.is_empty()
            || url.len() > cimd::MAX_URL_LEN
            || !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(invalid("url must be a client id URL (https://…)"));
        }
        super::error::no_nul(url, "url").map_err(|e| AdminError::invalid(e.description))?;
        let action = if blocked {
            "cimd.block"
        } else {
            "cimd.unblock"
        };
        let audit = AuditEntry::new(now, actor, action, Some(url), json!({}));
        let changed = self.store.set_cimd_block(url, blocked, now, &audit).await?;
        if blocked {
            self.auth.cimd_docs.forget(url);
        }
        Ok(changed)
    }
}
