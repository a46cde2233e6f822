//! Signing keys as use cases: the first key at start-up, reloading the key
//! set when the records change, and listing, rotating, retiring and marking
//! keys compromised (admin API and command line alike), as the
//! [`SigningKeys`] component that `App` composes.

use crate::store::SigningKeyStore;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use super::families::AdminError;
use super::support::StartError;
use crate::domain::{now, KeyLocation};
use crate::store::{AuditEntry, SigningKeyRecord, StoreError};
use crate::token::keys;
use crate::token::pkcs11::Hsm;
use crate::token::{self, Alg, KeySet, SigningKey};

/// The signing keys as one component: the key ring in force (shared with
/// the use cases that sign and verify), the store's key records and the
/// configuration. `App` composes it; the admin API, the console and the
/// command line list, rotate and retire keys through it.
pub struct SigningKeys {
    /// Validated configuration (keys directory, algorithm, lifetimes).
    config: Arc<crate::config::Config>,
    /// The store, behind its cache.
    store: Arc<crate::store::CachedStore>,
    /// The keys in force.
    keys: Arc<token::KeyRing>,
    /// The PKCS#11 token every new key is made in, when one is configured:
    /// then no file key signs.
    hsm: Option<Arc<Hsm>>,
}

/// A key just made, and where it lives.
struct NewKey {
    key: SigningKey,
    location: KeyLocation,
    public_jwk: Option<serde_json::Value>,
}

impl SigningKeys {
    /// A component over these parts.
    pub(super) fn new(
        config: Arc<crate::config::Config>,
        store: Arc<crate::store::CachedStore>,
        keys: Arc<token::KeyRing>,
        hsm: Option<Arc<Hsm>>,
    ) -> Self {
        SigningKeys {
            config,
            store,
            keys,
            hsm,
        }
    }

    /// The same component under another configuration.
    pub(super) fn with_config(&self, config: Arc<crate::config::Config>) -> SigningKeys {
        SigningKeys::new(
            config,
            self.store.clone(),
            self.keys.clone(),
            self.hsm.clone(),
        )
    }

    /// The PKCS#11 token, when the keys are in one.
    pub fn hsm(&self) -> Option<&Arc<Hsm>> {
        self.hsm.as_ref()
    }

    /// Makes a key for `alg`: in the PKCS#11 token when one is configured
    /// (never a file then), else a file in the keys directory.
    fn make_key(&self, alg: Alg) -> Result<NewKey, keys::KeyError> {
        match &self.hsm {
            Some(hsm) => {
                let (key, jwk) = keys::create_token_key(hsm, alg)?;
                Ok(NewKey {
                    key,
                    location: KeyLocation::Pkcs11,
                    public_jwk: Some(jwk),
                })
            }
            None => Ok(NewKey {
                key: keys::create_key_file(&self.config.keys_dir, alg)?,
                location: KeyLocation::File,
                public_jwk: None,
            }),
        }
    }

    /// The keys the records name, as this instance holds them: reused from
    /// `current` where loaded already; token keys from their records'
    /// public JWKs (signing through the token when this instance has it);
    /// file keys from the keys directory, published only while the keys
    /// are in a token.
    fn held_keys(
        &self,
        records: &[SigningKeyRecord],
        current: &KeySet,
    ) -> Result<HashMap<String, Arc<SigningKey>>, keys::KeyError> {
        let mut loaded: HashMap<String, Arc<SigningKey>> = HashMap::new();
        let mut missing_file = false;
        for r in records {
            if let Some(k) = current.key(&r.kid) {
                loaded.insert(r.kid.clone(), k.clone());
                continue;
            }
            match r.location {
                KeyLocation::Pkcs11 => match keys::token_key(r, self.hsm.as_ref()) {
                    Ok(k) => {
                        loaded.insert(r.kid.clone(), Arc::new(k));
                    }
                    Err(e) => log::warn!("signing key {}: {e}; skipped", r.kid),
                },
                KeyLocation::File => missing_file = true,
            }
        }
        if missing_file {
            for (kid, key) in keys::load_dir(&self.config.keys_dir)? {
                let key = match self.hsm {
                    Some(_) => Arc::new(key.public_only()),
                    None => key,
                };
                loaded.entry(kid).or_insert(key);
            }
        }
        Ok(loaded)
    }

    /// Records keys found in the keys directory that the database does not
    /// know, and creates the first key when none can sign (in the PKCS#11
    /// token when one is configured: an instance moving to a token makes
    /// its first token key here, and its file keys stay published).
    pub(super) async fn ensure_signing_key(&self) -> Result<(), StartError> {
        let dir = &self.config.keys_dir;
        let found = keys::load_dir(dir)?;
        let records = self.store.signing_keys().await?;
        let now = now();
        for (kid, key) in &found {
            if !records.iter().any(|r| &r.kid == kid) {
                self.store
                    .insert_signing_key(&SigningKeyRecord::new(kid, key.alg.as_str(), now, 0), None)
                    .await?;
            }
        }
        let records = self.store.signing_keys().await?;
        let loaded = self.held_keys(&records, &KeySet::default())?;
        let set = KeySet::new(&records, &loaded, self.config.max_token_ttl);
        if set.signer(now).is_none() && records.iter().all(|r| r.activates_at <= now) {
            if self.hsm.is_none()
                && records.iter().any(|r| {
                    r.location == KeyLocation::Pkcs11
                        && r.retired_at.is_none()
                        && r.compromised_at.is_none()
                })
            {
                log::error!(
                    "the signing key is in a PKCS#11 token and TOLLGATE_PKCS11_MODULE is not \
                     set: this instance publishes and verifies keys but cannot sign"
                );
                return Ok(());
            }
            let made = self.make_key(self.config.signing_alg)?;
            log::info!(
                "created signing key {} ({}, {})",
                made.key.kid,
                made.key.alg.as_str(),
                made.location.as_str()
            );
            self.store
                .insert_signing_key(
                    &SigningKeyRecord {
                        location: made.location,
                        public_jwk: made.public_jwk,
                        ..SigningKeyRecord::new(&made.key.kid, made.key.alg.as_str(), now, now)
                    },
                    Some(&AuditEntry::new(
                        now,
                        "system",
                        "signing_key.create",
                        Some(&made.key.kid),
                        serde_json::json!({
                            "alg": made.key.alg.as_str(),
                            "location": made.location.as_str(),
                        }),
                    )),
                )
                .await?;
        }
        Ok(())
    }
    /// Reloads the key set when the key records changed; returns whether it did.
    pub async fn reload_keys(&self) -> Result<bool, StartError> {
        // Read before the records: a change committed meanwhile moves it
        // again, and the next reader reloads once more.
        let marker = self.keys_generation();
        let records = self.store.signing_keys().await?;
        let current = self.keys.get();
        if current.records() == records && !records.is_empty() {
            self.keys.checked_at(marker);
            return Ok(false);
        }
        let loaded = self.held_keys(&records, &current)?;
        self.keys
            .set(KeySet::new(&records, &loaded, self.config.max_token_ttl));
        self.keys.checked_at(marker);
        Ok(true)
    }
    /// The cache's signing-key generation: it moves when a key was added,
    /// retired or marked compromised (or when anything may have changed).
    pub(super) fn keys_generation(&self) -> i64 {
        self.store.keys_generation() as i64
    }
    /// The key set, reloaded first when the signing keys may have changed
    /// since it was loaded (one atomic load when they did not): a key retired
    /// or marked compromised through the command line or another instance
    /// is seen by the very next verification, not the next background tick;
    /// other writes (revocations, client changes) cost no reload. While the
    /// database cannot be read, the set in memory answers.
    pub async fn current_keys(&self) -> Arc<KeySet> {
        if self.keys_generation() != self.keys.marker() {
            match self.reload_keys().await {
                Ok(_) => {}
                // The database is away: the set in memory keeps answering
                // (JWKS, verification), as it does between reloads.
                Err(e) => log::debug!("signing keys not reloaded: {e}"),
            }
        }
        self.keys.get()
    }
    /// The key that signs at `now` (see [`KeySet::signer`]), if any.
    pub async fn signer(&self, now: i64) -> Option<Arc<SigningKey>> {
        self.current_keys().await.signer(now).cloned()
    }

    /// Signs a JSON claims set as a JWT of type `typ` with the key that
    /// signs at `now` (a signed introspection answer, a Security Event
    /// Token). Fails when no key can sign here or the signature fails.
    pub async fn sign_json(
        &self,
        claims: &serde_json::Value,
        typ: token::Typ,
        now: i64,
    ) -> Result<String, token::SignError> {
        let key = self.signer(now).await.ok_or_else(|| {
            token::SignError("no signing key this instance holds is active".into())
        })?;
        let payload = serde_json::to_vec(claims).map_err(|e| token::SignError(e.to_string()))?;
        token::sign_typed(&payload, &key, typ)
    }

    /// Every signing key's lifecycle.
    pub async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, AdminError> {
        Ok(self.store.signing_keys().await?)
    }
    /// Creates a signing key file and its record, published at once and
    /// signing from `activates_at`.
    pub(super) async fn create_signing_key(
        &self,
        actor: &str,
        alg: Option<Alg>,
        now: i64,
        activates_at: i64,
        reason: &str,
    ) -> Result<SigningKeyRecord, AdminError> {
        let alg = alg.unwrap_or(self.config.signing_alg);
        let made = self.make_key(alg).map_err(|e| match self.hsm {
            // The token is away: 503, try again.
            Some(_) => AdminError::Store(StoreError::Unavailable(e.to_string())),
            None => AdminError::Internal(e.to_string()),
        })?;
        let record = SigningKeyRecord {
            location: made.location,
            public_jwk: made.public_jwk,
            ..SigningKeyRecord::new(&made.key.kid, alg.as_str(), now, activates_at)
        };
        let audit = AuditEntry::new(
            now,
            actor,
            "signing_key.rotate",
            Some(&record.kid),
            json!({
                "alg": alg.as_str(),
                "activates_at": activates_at,
                "reason": reason,
                "location": made.location.as_str(),
            }),
        );
        self.store.insert_signing_key(&record, Some(&audit)).await?;
        Ok(record)
    }
    /// Rotates the signing key: a new key is published at once and signs after
    /// `prepublish` seconds; the keys signing now retire at that moment and stay
    /// published until every token they signed has expired.
    pub async fn rotate_signing_key(
        &self,
        actor: &str,
        alg: Option<Alg>,
        prepublish: Option<i64>,
        now: i64,
    ) -> Result<SigningKeyRecord, AdminError> {
        let prepublish = prepublish.unwrap_or(self.config.key_prepublish);
        if !(0..=7 * 86_400).contains(&prepublish) {
            return Err(AdminError::invalid(
                "prepublish must be between 0 and 604800 seconds",
            ));
        }
        let record = self
            .create_signing_key(actor, alg, now, now + prepublish, "rotation")
            .await?;
        let activates_at = record.activates_at;
        for old in self.store.signing_keys().await? {
            if old.kid != record.kid && old.retired_at.is_none() {
                let audit = AuditEntry::new(
                    now,
                    actor,
                    "signing_key.retire",
                    Some(&old.kid),
                    json!({"retired_at": activates_at}),
                );
                self.store
                    .retire_signing_key(&old.kid, activates_at, &audit)
                    .await?;
            }
        }
        if let Err(e) = self.reload_keys().await {
            log::warn!("signing keys not reloaded: {e}");
        }
        Ok(record)
    }
    /// Retires one signing key now; it stays published until its tokens expire.
    ///
    /// With `compromised`, the response to a leaked key: the key leaves the
    /// JWKS at once and every token it signed is inactive at once (on every
    /// instance as soon as it reloads its keys: within a second). When it was
    /// the only key that signs, a new key is created first and signs at once,
    /// so that issuance goes on.
    pub async fn retire_signing_key(
        &self,
        actor: &str,
        kid: &str,
        compromised: bool,
        now: i64,
    ) -> Result<SigningKeyRecord, AdminError> {
        let keys = self.store.signing_keys().await?;
        let target = keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| AdminError::not_found("no such signing key"))?;
        let others_sign = keys
            .iter()
            .any(|k| k.kid != kid && k.retired_at.is_none() && k.activates_at <= now);
        if compromised {
            if target.compromised_at.is_some() {
                return Err(AdminError::conflict(
                    "signing key is already marked compromised",
                ));
            }
            if !others_sign && target.retired_at.is_none_or(|r| r > now) {
                self.create_signing_key(actor, None, now, now, "compromise of another key")
                    .await?;
            }
            let audit = AuditEntry::new(
                now,
                actor,
                "signing_key.compromise",
                Some(kid),
                json!({"compromised_at": now}),
            );
            self.store.compromise_signing_key(kid, now, &audit).await?;
        } else {
            if target.retired_at.is_some() {
                return Err(AdminError::conflict("signing key is already retired"));
            }
            if !others_sign {
                return Err(AdminError::conflict(
                    "cannot retire the only active signing key; rotate first",
                ));
            }
            let audit = AuditEntry::new(
                now,
                actor,
                "signing_key.retire",
                Some(kid),
                json!({"retired_at": now}),
            );
            self.store.retire_signing_key(kid, now, &audit).await?;
        }
        if let Err(e) = self.reload_keys().await {
            log::warn!("signing keys not reloaded: {e}");
        }
        self.store
            .signing_keys()
            .await?
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| AdminError::not_found("no such signing key"))
    }
}
