//! Shared Signals (OpenID SSF 1.0) as the [`Signals`] component: receivers'
//! streams (§8), the transmitter loop that turns recorded actions into
//! Security Event Tokens for every stream (RFC 8417), push delivery with
//! retries and a lease so one instance of a fleet delivers each stream
//! (RFC 8935), and poll delivery (RFC 8936).
//!
//! Events come from the audit log: each action writes its audit entry in
//! its own transaction, so an acknowledged action has its entry, and the
//! loop turns entries into stored events within 100 ms. Nothing is lost
//! across a crash or restart: the loop's position is stored with the
//! events it made.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{json, Value};

use super::families::AdminError;
use super::signing::SigningKeys;
use crate::domain::ssf::{
    NewSignal, SsfDelivery, SsfStream, StreamStatus, POLL_METHOD, PUSH_METHOD,
};
use crate::domain::AuditEntry;
use crate::oauth::ssf;
use crate::store::{AuditFilter, CachedStore, StoreError};

/// The scope a receiver's token needs for the stream endpoints.
pub const SSF_SCOPE: &str = "tollgate:ssf";
/// Streams one receiver may have at most.
pub const MAX_STREAMS_PER_RECEIVER: usize = 5;
/// Audit entries read back before the stored position each round, so an
/// entry whose id was taken before a later one's but committed after it
/// (PostgreSQL allocates ids at insert time) is not missed.
const LOOKBACK: i64 = 256;
/// Entries read per round.
const BATCH: u32 = 500;
/// A receiver failing this long has its stream paused.
const GIVE_UP_AFTER: i64 = 24 * 3600;
/// Seconds an instance holds a stream while delivering it.
const LEASE: i64 = 30;
/// Events a poll answers at most.
const MAX_POLL: u32 = 100;

/// The receiver's delivery block (SSF 1.0 §8.1.1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryRequest {
    /// `urn:ietf:rfc:8935` (push) or `urn:ietf:rfc:8936` (poll).
    pub method: String,
    /// Push: the receiver's URL. Poll: ignored (Tollgate sets it).
    pub endpoint_url: Option<String>,
    /// Push: the `Authorization` value Tollgate sends.
    pub authorization_header: Option<String>,
}

/// A stream's configuration as a receiver writes it (SSF 1.0 §8.1.1).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct StreamRequest {
    /// On update and replace: which stream.
    pub stream_id: Option<String>,
    /// How events reach the receiver.
    pub delivery: Option<DeliveryRequest>,
    /// Event types wanted.
    pub events_requested: Option<Vec<String>>,
    /// Free text.
    pub description: Option<String>,
}

/// RFC 8936 §2.4: a poll request.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct PollRequest {
    /// At most this many SETs in the answer.
    #[serde(rename = "maxEvents")]
    pub max_events: Option<u32>,
    /// Answer at once even when nothing is waiting (else wait up to 10 s).
    #[serde(rename = "returnImmediately")]
    pub return_immediately: Option<bool>,
    /// `jti`s of SETs the receiver took.
    #[serde(default)]
    pub ack: Vec<String>,
    /// `jti`s of SETs the receiver could not take, with why.
    #[serde(rename = "setErrs", default)]
    pub set_errs: serde_json::Map<String, Value>,
}

/// The Shared Signals transmitter.
pub struct Signals {
    config: Arc<crate::config::Config>,
    store: Arc<CachedStore>,
    signing: Arc<SigningKeys>,
    metrics: Arc<crate::metrics::Metrics>,
    fetcher: crate::fetch::Fetcher,
    /// This instance's name in leases.
    instance: String,
    /// Audit ids this instance already turned into events (the look-back
    /// reads them again), the newest few thousand.
    seen: Mutex<(HashSet<i64>, VecDeque<i64>)>,
    /// Streams this instance is delivering now.
    in_flight: Mutex<HashSet<String>>,
}

fn invalid(why: impl Into<String>) -> AdminError {
    AdminError::invalid(why.into())
}

impl Signals {
    /// The component.
    pub(super) fn new(
        config: Arc<crate::config::Config>,
        store: Arc<CachedStore>,
        signing: Arc<SigningKeys>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Signals {
        Signals {
            fetcher: crate::fetch::Fetcher::new(config.fetch_allow_local),
            config,
            store,
            signing,
            metrics,
            instance: crate::secret::random_b64(12),
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    fn signals(&self) -> &dyn crate::store::SignalStore {
        self.store.backend().signals()
    }

    /// The poll endpoint of a stream (RFC 8936).
    fn poll_url(&self, id: &str) -> String {
        format!("{}/ssf/poll/{id}", self.config.issuer)
    }

    /// Transmitter metadata (SSF 1.0 §7.1).
    pub fn configuration(&self) -> Value {
        let base = &self.config.issuer;
        json!({
            "spec_version": "1_0",
            "issuer": base,
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "delivery_methods_supported": [PUSH_METHOD, POLL_METHOD],
            "configuration_endpoint": format!("{base}/ssf/streams"),
            "status_endpoint": format!("{base}/ssf/status"),
            "verification_endpoint": format!("{base}/ssf/verify"),
            "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
            "default_subjects": "ALL",
            "events_supported": ssf::EVENTS_SUPPORTED,
        })
    }

    /// A stream's configuration as SSF 1.0 §8.1.1 shows it (never the
    /// `authorization_header`).
    pub fn view(&self, s: &SsfStream) -> Value {
        let endpoint = match &s.delivery {
            SsfDelivery::Push { endpoint_url, .. } => endpoint_url.clone(),
            SsfDelivery::Poll => self.poll_url(&s.id),
        };
        let mut v = json!({
            "stream_id": s.id,
            "iss": self.config.issuer,
            "aud": s.client_id,
            "delivery": {"method": s.delivery.method(), "endpoint_url": endpoint},
            "events_supported": ssf::EVENTS_SUPPORTED,
            "events_requested": s.events_requested,
            "events_delivered": ssf::delivered(&s.events_requested),
        });
        if let Some(d) = &s.description {
            v["description"] = json!(d);
        }
        v
    }

    fn check_delivery(&self, d: &DeliveryRequest) -> Result<SsfDelivery, AdminError> {
        match d.method.as_str() {
            PUSH_METHOD => {
                let url = d
                    .endpoint_url
                    .as_deref()
                    .ok_or_else(|| invalid("delivery.endpoint_url is required for push"))?;
                if url.len() > 2048 {
                    return Err(invalid(
                        "delivery.endpoint_url is longer than 2048 characters",
                    ));
                }
                crate::fetch::check_url(url, self.config.fetch_allow_local)
                    .map_err(|e| invalid(format!("delivery.endpoint_url: {e}")))?;
                let header = d.authorization_header.clone();
                if header
                    .as_ref()
                    .is_some_and(|h| h.len() > 1024 || h.bytes().any(|b| b.is_ascii_control()))
                {
                    return Err(invalid(
                        "delivery.authorization_header must be at most 1024 printable characters",
                    ));
                }
                Ok(SsfDelivery::Push {
                    endpoint_url: url.to_string(),
                    authorization_header: header,
                })
            }
            POLL_METHOD => Ok(SsfDelivery::Poll),
            _ => Err(invalid(format!(
                "delivery.method must be {PUSH_METHOD} or {POLL_METHOD}"
            ))),
        }
    }

    fn check_events(events: &[String]) -> Result<(), AdminError> {
        if events.len() > 32 || events.iter().any(|e| e.len() > 256) {
            return Err(invalid(
                "events_requested: at most 32 URIs of 256 characters",
            ));
        }
        Ok(())
    }

    fn check_description(d: &Option<String>) -> Result<(), AdminError> {
        if d.as_ref().is_some_and(|d| d.len() > 512) {
            return Err(invalid("description is longer than 512 characters"));
        }
        Ok(())
    }

    /// SSF 1.0 §8.1.1.1: creates a stream for `receiver`.
    pub async fn create_stream(
        &self,
        receiver: &str,
        req: StreamRequest,
        now: i64,
    ) -> Result<SsfStream, AdminError> {
        let delivery = match &req.delivery {
            Some(d) => self.check_delivery(d)?,
            None => SsfDelivery::Poll,
        };
        let events = req.events_requested.unwrap_or_default();
        Self::check_events(&events)?;
        Self::check_description(&req.description)?;
        let mine = self.streams_of(receiver).await?.len();
        if mine >= MAX_STREAMS_PER_RECEIVER {
            return Err(AdminError::conflict(format!(
                "a receiver may have at most {MAX_STREAMS_PER_RECEIVER} streams"
            )));
        }
        let stream = SsfStream {
            id: crate::secret::generate_id("ss_"),
            client_id: receiver.to_string(),
            description: req.description,
            delivery,
            events_requested: events,
            status: StreamStatus::Enabled,
            status_reason: None,
            created_at: now,
            updated_at: now,
            last_error: None,
            last_error_at: None,
            failing_since: None,
            attempts: 0,
            retry_at: 0,
        };
        let audit = AuditEntry::new(
            now,
            receiver,
            "ssf.stream.create",
            Some(&stream.id),
            json!({"method": stream.delivery.method()}),
        );
        self.signals().create_stream(&stream, &audit).await?;
        if self.signals().signal_cursor().await?.is_none() {
            // The transmitter's first stream: actions from here on count
            // (the look-back covers those committing meanwhile).
            let newest = self
                .store
                .backend()
                .console()
                .search_audit(&AuditFilter::default(), None, 1)
                .await?;
            let from = newest.first().map_or(0, |e| e.id);
            self.signals().add_signals(&[], Some(from)).await?;
        }
        Ok(stream)
    }

    /// The receiver's streams.
    pub async fn streams_of(&self, receiver: &str) -> Result<Vec<SsfStream>, AdminError> {
        Ok(self
            .signals()
            .list_streams()
            .await?
            .into_iter()
            .filter(|s| s.client_id == receiver)
            .collect())
    }

    /// One of the receiver's streams; another receiver's is not found.
    pub async fn stream_of(&self, receiver: &str, id: &str) -> Result<SsfStream, AdminError> {
        match self.signals().get_stream(id).await? {
            Some(s) if s.client_id == receiver => Ok(s),
            _ => Err(AdminError::not_found("no such stream")),
        }
    }

    /// SSF 1.0 §8.1.1.3 and §8.1.1.4: updates (`replace` false: only the
    /// members given) or replaces a stream's configuration.
    pub async fn update_stream(
        &self,
        receiver: &str,
        req: StreamRequest,
        replace: bool,
        now: i64,
    ) -> Result<SsfStream, AdminError> {
        let id = req
            .stream_id
            .clone()
            .ok_or_else(|| invalid("stream_id is required"))?;
        let mut s = self.stream_of(receiver, &id).await?;
        if replace && req.delivery.is_none() {
            return Err(invalid("delivery is required to replace a stream"));
        }
        if let Some(d) = &req.delivery {
            s.delivery = self.check_delivery(d)?;
        }
        if let Some(e) = req.events_requested {
            Self::check_events(&e)?;
            s.events_requested = e;
        } else if replace {
            s.events_requested = Vec::new();
        }
        if req.description.is_some() || replace {
            Self::check_description(&req.description)?;
            s.description = req.description;
        }
        s.updated_at = now;
        let audit = AuditEntry::new(now, receiver, "ssf.stream.update", Some(&id), json!({}));
        if !self.signals().update_stream(&s, Some(&audit)).await? {
            return Err(AdminError::not_found("no such stream"));
        }
        Ok(s)
    }

    /// SSF 1.0 §8.1.1.5: deletes a stream and its undelivered events.
    pub async fn delete_stream(
        &self,
        receiver: &str,
        id: &str,
        now: i64,
    ) -> Result<(), AdminError> {
        self.stream_of(receiver, id).await?;
        let audit = AuditEntry::new(now, receiver, "ssf.stream.delete", Some(id), json!({}));
        if !self.signals().delete_stream(id, &audit).await? {
            return Err(AdminError::not_found("no such stream"));
        }
        Ok(())
    }

    /// SSF 1.0 §8.1.2.2: sets a stream's status. Disabling drops what was
    /// waiting (a disabled stream keeps nothing); enabling a stream the
    /// transmitter paused starts its retries afresh.
    pub async fn set_status(
        &self,
        receiver: &str,
        id: &str,
        status: &str,
        reason: Option<String>,
        now: i64,
    ) -> Result<SsfStream, AdminError> {
        let status = StreamStatus::parse(status)
            .ok_or_else(|| invalid("status must be enabled, paused or disabled"))?;
        if reason.as_ref().is_some_and(|r| r.len() > 512) {
            return Err(invalid("reason is longer than 512 characters"));
        }
        let mut s = self.stream_of(receiver, id).await?;
        s.status = status;
        s.status_reason = reason;
        s.updated_at = now;
        s.attempts = 0;
        s.failing_since = None;
        s.retry_at = 0;
        let audit = AuditEntry::new(
            now,
            receiver,
            "ssf.stream.status",
            Some(id),
            json!({"status": status.as_str()}),
        );
        self.signals().update_stream(&s, Some(&audit)).await?;
        if status == StreamStatus::Disabled {
            self.signals().discard_signals(id, now).await?;
        }
        Ok(s)
    }

    /// SSF 1.0 §8.1.4.2: queues a verification event on the stream.
    pub async fn verify(
        &self,
        receiver: &str,
        id: &str,
        state: Option<&str>,
        now: i64,
    ) -> Result<(), AdminError> {
        if state.is_some_and(|s| s.len() > 256) {
            return Err(invalid("state is longer than 256 characters"));
        }
        let s = self.stream_of(receiver, id).await?;
        if s.status != StreamStatus::Enabled {
            return Err(AdminError::conflict("the stream is not enabled"));
        }
        let event = ssf::verification(id, state);
        let jti = crate::secret::token_id();
        let set = self
            .sign(&s.client_id, &jti, now, &format!("verify-{jti}"), &event)
            .await
            .map_err(AdminError::Store)?;
        self.signals()
            .add_signals(
                &[NewSignal {
                    stream_id: id.to_string(),
                    jti: jti.clone(),
                    source: format!("verify:{jti}"),
                    set,
                    created_at: now,
                }],
                None,
            )
            .await?;
        self.metrics.ssf.with_label_values(&["stored"]).inc();
        Ok(())
    }

    /// RFC 8936 §2: a poll. Acknowledges what the receiver took (and what
    /// it refused, which is logged), then answers the SETs waiting, oldest
    /// first; waits up to 10 s for one unless `returnImmediately`.
    pub async fn poll(
        &self,
        receiver: &str,
        id: &str,
        req: PollRequest,
        now: i64,
    ) -> Result<Value, AdminError> {
        let s = self.stream_of(receiver, id).await?;
        if s.delivery != SsfDelivery::Poll {
            return Err(invalid("the stream's delivery method is push"));
        }
        let mut done: Vec<String> = req.ack.clone();
        for (jti, err) in &req.set_errs {
            log::info!("stream {id}: receiver refused SET {jti}: {err}");
            done.push(jti.clone());
        }
        if done.len() > 1000 {
            return Err(invalid("at most 1000 acknowledgements a poll"));
        }
        if !done.is_empty() {
            let n = self.signals().mark_delivered(id, &done, now).await?;
            self.metrics
                .ssf
                .with_label_values(&["delivered"])
                .inc_by(n as u64);
        }
        let max = req.max_events.unwrap_or(MAX_POLL).min(MAX_POLL);
        if max == 0 {
            return Ok(json!({"sets": {}, "moreAvailable": false}));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let pending = if s.status == StreamStatus::Enabled {
                self.signals().pending_signals(id, max + 1).await?
            } else {
                Vec::new()
            };
            if !pending.is_empty()
                || req.return_immediately.unwrap_or(false)
                || std::time::Instant::now() >= deadline
            {
                let more = pending.len() > max as usize;
                let sets: serde_json::Map<String, Value> = pending
                    .into_iter()
                    .take(max as usize)
                    .map(|p| (p.jti, Value::String(p.set)))
                    .collect();
                return Ok(json!({"sets": sets, "moreAvailable": more}));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Signs an event as a SET for the receiver `aud`.
    async fn sign(
        &self,
        aud: &str,
        jti: &str,
        now: i64,
        txn: &str,
        event: &ssf::Event,
    ) -> Result<String, StoreError> {
        let claims = ssf::set_claims(&self.config.issuer, aud, jti, now, txn, event);
        self.signing
            .sign_json(&claims, crate::token::Typ::SecEvent, now)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// One round of the transmitter (every 100 ms): recorded actions into
    /// events for every stream that wants them, then push deliveries.
    pub async fn step(self: &Arc<Self>, now: i64) -> Result<(), StoreError> {
        let streams = self.signals().list_streams().await?;
        if streams.is_empty() {
            return Ok(());
        }
        self.fan_out(&streams, now).await?;
        self.deliver(&streams, now).await
    }

    /// Turns new audit entries into stored events, one per stream that
    /// asked for its type and existed when it happened.
    async fn fan_out(&self, streams: &[SsfStream], now: i64) -> Result<(), StoreError> {
        // Set when the first stream was made (`create_stream`).
        let Some(cursor) = self.signals().signal_cursor().await? else {
            return Ok(());
        };
        let mut after = cursor.saturating_sub(LOOKBACK);
        loop {
            let entries = self.store.backend().list_audit(after, BATCH).await?;
            let Some(last) = entries.last().map(|e| e.id) else {
                return Ok(());
            };
            let mut batch = Vec::new();
            let mut fresh = Vec::new();
            for entry in &entries {
                if self.was_seen(entry.id) {
                    continue;
                }
                fresh.push(entry.id);
                let Some(event) = ssf::event_of(entry, &self.config.issuer) else {
                    continue;
                };
                let txn = format!("audit-{}", entry.id);
                for s in streams.iter().filter(|s| {
                    s.status != StreamStatus::Disabled
                        && s.created_at <= entry.at
                        && s.events_requested.iter().any(|t| t == event.typ)
                }) {
                    let jti = crate::secret::token_id();
                    let set = self.sign(&s.client_id, &jti, now, &txn, &event).await?;
                    batch.push(NewSignal {
                        stream_id: s.id.clone(),
                        jti,
                        source: format!("audit:{}", entry.id),
                        set,
                        created_at: now,
                    });
                }
            }
            if !fresh.is_empty() {
                let added = self
                    .signals()
                    .add_signals(&batch, Some(last.max(cursor)))
                    .await?;
                self.metrics
                    .ssf
                    .with_label_values(&["stored"])
                    .inc_by(added as u64);
                self.remember(&fresh);
            }
            if entries.len() < BATCH as usize {
                return Ok(());
            }
            after = last;
        }
    }

    fn was_seen(&self, id: i64) -> bool {
        crate::sync::lock(&self.seen).0.contains(&id)
    }

    fn remember(&self, ids: &[i64]) {
        let mut seen = crate::sync::lock(&self.seen);
        for id in ids {
            if seen.0.insert(*id) {
                seen.1.push_back(*id);
            }
        }
        while seen.1.len() > 4 * LOOKBACK as usize {
            if let Some(old) = seen.1.pop_front() {
                seen.0.remove(&old);
            }
        }
    }

    /// Delivers every enabled push stream with events waiting whose retry
    /// time has come and that no instance holds, each in order, all at once.
    async fn deliver(self: &Arc<Self>, streams: &[SsfStream], now: i64) -> Result<(), StoreError> {
        let backlog = self.signals().signal_backlog().await?;
        let mut work = Vec::new();
        for s in streams {
            let waiting = backlog.iter().any(|(id, n)| id == &s.id && *n > 0);
            if !waiting
                || s.status != StreamStatus::Enabled
                || s.retry_at > now
                || !matches!(s.delivery, SsfDelivery::Push { .. })
            {
                continue;
            }
            if !crate::sync::lock(&self.in_flight).insert(s.id.clone()) {
                continue;
            }
            if !self
                .signals()
                .lease_stream(&s.id, &self.instance, now, now + LEASE)
                .await?
            {
                crate::sync::lock(&self.in_flight).remove(&s.id);
                continue;
            }
            work.push(self.deliver_stream(s.clone(), now));
        }
        futures_util::future::join_all(work).await;
        Ok(())
    }

    /// Delivers one leased stream's waiting events in order until one
    /// fails; a failure backs off (1 s, doubling, at most an hour) and after
    /// 24 hours pauses the stream with the reason for the admin.
    async fn deliver_stream(&self, mut s: SsfStream, now: i64) {
        let failure = self.push_pending(&s).await.err();
        let changed = match failure {
            None if s.attempts > 0 || s.failing_since.is_some() => {
                s.attempts = 0;
                s.failing_since = None;
                s.retry_at = 0;
                true
            }
            None => false,
            Some(why) => {
                s.attempts += 1;
                let since = *s.failing_since.get_or_insert(now);
                s.retry_at = now + (1i64 << (s.attempts - 1).clamp(0, 12)).min(3600);
                s.last_error = Some(why.clone());
                s.last_error_at = Some(now);
                self.metrics.ssf.with_label_values(&["failed"]).inc();
                if now - since >= GIVE_UP_AFTER {
                    s.status = StreamStatus::Paused;
                    s.status_reason = Some(format!(
                        "paused by the transmitter: deliveries failed for 24 hours ({why})"
                    ));
                    log::warn!("stream {} paused: {why}", s.id);
                }
                true
            }
        };
        if changed {
            if let Err(e) = self.signals().update_stream(&s, None).await {
                log::warn!("stream {}: cannot record delivery state: {e}", s.id);
            }
        }
        // Released: another instance may take it at once.
        let _ = self
            .signals()
            .lease_stream(&s.id, &self.instance, now, now - 1)
            .await;
        crate::sync::lock(&self.in_flight).remove(&s.id);
    }

    /// Pushes the stream's waiting events one by one, oldest first; stops
    /// at the first the receiver does not accept.
    async fn push_pending(&self, s: &SsfStream) -> Result<(), String> {
        let SsfDelivery::Push {
            endpoint_url,
            authorization_header,
        } = &s.delivery
        else {
            return Ok(());
        };
        loop {
            let pending = self
                .signals()
                .pending_signals(&s.id, 50)
                .await
                .map_err(|e| e.to_string())?;
            if pending.is_empty() {
                return Ok(());
            }
            for p in pending {
                // The lease is renewed before each push, so a slow receiver
                // never lets another instance deliver the same event.
                let now = crate::domain::now();
                if !self
                    .signals()
                    .lease_stream(&s.id, &self.instance, now, now + LEASE)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Ok(());
                }
                match self
                    .fetcher
                    .push_set(endpoint_url, authorization_header.as_deref(), &p.set)
                    .await
                {
                    // RFC 8935 §2.2: 202 Accepted.
                    Ok(202) | Ok(200) | Ok(204) => {
                        self.signals()
                            .mark_delivered(
                                &s.id,
                                std::slice::from_ref(&p.jti),
                                crate::domain::now(),
                            )
                            .await
                            .map_err(|e| e.to_string())?;
                        self.metrics.ssf.with_label_values(&["delivered"]).inc();
                    }
                    Ok(status) => return Err(format!("the receiver answered {status}")),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    }

    /// Every stream with its status, backlog and last error, for the admin
    /// (never the receiver's `authorization_header`).
    pub async fn admin_view(&self) -> Result<Vec<Value>, AdminError> {
        let backlog = self.signals().signal_backlog().await?;
        Ok(self
            .signals()
            .list_streams()
            .await?
            .iter()
            .map(|s| {
                let mut v = self.view(s);
                v["status"] = json!(s.status.as_str());
                v["status_reason"] = json!(s.status_reason);
                v["backlog"] = json!(backlog
                    .iter()
                    .find(|(id, _)| id == &s.id)
                    .map_or(0, |(_, n)| *n));
                v["last_error"] = json!(s.last_error);
                v["last_error_at"] = json!(s.last_error_at);
                v["failing_since"] = json!(s.failing_since);
                v["created_at"] = json!(s.created_at);
                v
            })
            .collect())
    }

    /// Forgets delivered events after a day.
    pub async fn prune(&self, now: i64) -> Result<usize, StoreError> {
        self.signals().prune_signals(now - 86_400).await
    }
}
