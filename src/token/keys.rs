//! Signing keys: PEM files in the keys directory, their JWK form with an RFC 7638
//! thumbprint as `kid`, and the in-memory key set the server signs and verifies with.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::DecodingKey;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

use super::pkcs11::{Hsm, PublicParts, Scheme};
use super::Alg;
use crate::domain::SigningKeyRecord;

/// A key-file failure.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A PEM file holds no key Tollgate can use.
    #[error("{0}")]
    Format(String),
}

/// A parsed private key, held in memory so that signing does not re-parse
/// PKCS#8 (jsonwebtoken's `encode` re-parses and re-validates the key on
/// every call, which doubles the cost of an ES256 signature); or a key in
/// a PKCS#11 token; or none (a key this instance only publishes).
enum PrivateKey {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    /// An RSA key; it signs with PSS when the key's algorithm is PS256.
    Rsa(Arc<RsaKeyPair>),
    /// A key in a PKCS#11 token: the token signs; no private byte is here.
    Hsm(Arc<Hsm>),
    /// Published and verified here, never signed with: a token's key on
    /// an instance without the module, or a file key on an instance whose
    /// keys are in a token (it never signs with a software key).
    PublicOnly,
}

/// A private key loaded for signing, with its public half for verifying.
pub struct SigningKey {
    /// RFC 7638 thumbprint (SHA-256, base64url).
    pub kid: String,
    /// Its algorithm, pinned for verification.
    pub alg: Alg,
    private: PrivateKey,
    /// The JWS protected header `{"typ":"at+jwt","alg":…,"kid":…}`, base64url.
    pub(crate) header_b64: String,
    /// The same with `typ: txntoken+jwt` (transaction tokens).
    pub(crate) txn_header_b64: String,
    /// The same with `typ: token-introspection+jwt` (RFC 9701).
    pub(crate) introspection_header_b64: String,
    /// The same with `typ: secevent+jwt` (RFC 8417).
    pub(crate) secevent_header_b64: String,
    pub(crate) decoding: DecodingKey,
    /// Public JWK (RFC 7517 §4) with `kid`, `alg` and `use: sig`.
    pub jwk: Value,
}

impl SigningKey {
    fn new(
        alg: Alg,
        private: PrivateKey,
        decoding: DecodingKey,
        kid: String,
        jwk: Value,
    ) -> SigningKey {
        let header = |typ: &str| {
            b64(json!({"typ": typ, "alg": alg.as_str(), "kid": kid})
                .to_string()
                .as_bytes())
        };
        SigningKey {
            alg,
            private,
            header_b64: header(super::TOKEN_TYPE),
            txn_header_b64: header(super::TXN_TOKEN_TYPE),
            introspection_header_b64: header(super::INTROSPECTION_TYPE),
            secevent_header_b64: header(super::SECEVENT_TYPE),
            decoding,
            kid,
            jwk,
        }
    }

    /// Its protected header, base64url, for a JWT of type `typ`.
    pub(crate) fn header(&self, typ: super::Typ) -> &str {
        match typ {
            super::Typ::Access => &self.header_b64,
            super::Typ::Txn => &self.txn_header_b64,
            super::Typ::Introspection => &self.introspection_header_b64,
            super::Typ::SecEvent => &self.secevent_header_b64,
        }
    }

    /// The same RSA key under the other RSA algorithm (RS256 ↔ PS256: a
    /// PKCS#8 file does not say which, the key's record does); `None` for
    /// any other change.
    pub fn with_alg(&self, alg: Alg) -> Option<SigningKey> {
        if !(matches!(self.alg, Alg::Rs256 | Alg::Ps256) && matches!(alg, Alg::Rs256 | Alg::Ps256))
        {
            return None;
        }
        let private = match &self.private {
            PrivateKey::Rsa(pair) => PrivateKey::Rsa(pair.clone()),
            PrivateKey::Hsm(hsm) => PrivateKey::Hsm(hsm.clone()),
            PrivateKey::PublicOnly => PrivateKey::PublicOnly,
            PrivateKey::Ec(_) | PrivateKey::Ed(_) => return None,
        };
        let mut jwk = self.jwk.clone();
        jwk["alg"] = json!(alg.as_str());
        Some(SigningKey::new(
            alg,
            private,
            self.decoding.clone(),
            self.kid.clone(),
            jwk,
        ))
    }

    /// The same key, published and verified but never signed with here.
    pub fn public_only(&self) -> SigningKey {
        SigningKey::new(
            self.alg,
            PrivateKey::PublicOnly,
            self.decoding.clone(),
            self.kid.clone(),
            self.jwk.clone(),
        )
    }

    /// Whether this instance may sign with it: a file key, or a key in
    /// the PKCS#11 token this instance is configured for (which may still
    /// fail while the token is unavailable).
    pub fn can_sign(&self) -> bool {
        !matches!(self.private, PrivateKey::PublicOnly)
    }

    /// Whether it signs now: a key in a PKCS#11 token signs a probe (the
    /// token may be away); a file key always can.
    pub fn probe(&self) -> bool {
        match &self.private {
            PrivateKey::Hsm(_) => self.sign_bytes(b"tollgate readiness probe").is_ok(),
            PrivateKey::PublicOnly => false,
            _ => true,
        }
    }

    /// Whether the key is in a PKCS#11 token.
    pub fn in_token(&self) -> bool {
        matches!(self.private, PrivateKey::Hsm(_))
    }

    /// The length of its raw signatures in bytes.
    pub fn signature_len(&self) -> usize {
        match &self.private {
            PrivateKey::Rsa(k) => k.public().modulus_len(),
            _ => match self.alg {
                Alg::Es256 | Alg::EdDsa => 64,
                // The modulus, from the JWK's `n`.
                Alg::Rs256 | Alg::Ps256 => self.jwk["n"].as_str().map_or(256, |n| n.len() * 3 / 4),
            },
        }
    }

    /// Signs `message` (the JWS signing input) and returns the raw signature.
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, super::SignError> {
        let failed = |_| super::SignError("the signature failed".into());
        match &self.private {
            PrivateKey::Ec(k) => Ok(k
                .sign(&SystemRandom::new(), message)
                .map_err(failed)?
                .as_ref()
                .to_vec()),
            PrivateKey::Ed(k) => Ok(k.sign(message).as_ref().to_vec()),
            PrivateKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                let padding: &'static dyn ring::signature::RsaEncoding = match self.alg {
                    Alg::Ps256 => &ring::signature::RSA_PSS_SHA256,
                    _ => &RSA_PKCS1_SHA256,
                };
                k.sign(padding, &SystemRandom::new(), message, &mut sig)
                    .map_err(failed)?;
                Ok(sig)
            }
            PrivateKey::Hsm(hsm) => hsm
                .sign(&self.kid, scheme(self.alg), message)
                .map_err(|e| super::SignError(e.to_string())),
            PrivateKey::PublicOnly => Err(super::SignError(format!(
                "signing key {} is not held by this instance",
                self.kid
            ))),
        }
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order,
/// without white space. The member values are base64url, so need no escaping.
fn thumbprint(canonical: &str) -> String {
    b64(&crate::secret::digest(canonical.as_bytes()))
}

/// Generates a new private key for `alg`, as PKCS#8 PEM.
pub fn generate_pem(alg: Alg) -> Result<String, KeyError> {
    let rng = SystemRandom::new();
    let der = match alg {
        Alg::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError::Format("cannot generate a P-256 key".into()))?
            .as_ref()
            .to_vec(),
        Alg::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| KeyError::Format("cannot generate an Ed25519 key".into()))?
            .as_ref()
            .to_vec(),
        Alg::Rs256 | Alg::Ps256 => {
            let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
                .map_err(|e| KeyError::Format(format!("cannot generate an RSA key: {e}")))?;
            return key
                .to_pkcs8_pem(LineEnding::LF)
                .map(|p| p.to_string())
                .map_err(|e| KeyError::Format(format!("cannot encode an RSA key: {e}")));
        }
    };
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der)))
}

/// Loads a PKCS#8 PEM private key; its algorithm follows from its type.
pub fn load_pem(text: &str) -> Result<SigningKey, KeyError> {
    let parsed = pem::parse(text).map_err(|e| KeyError::Format(format!("not a PEM file: {e}")))?;
    if parsed.tag() != "PRIVATE KEY" {
        return Err(KeyError::Format(format!(
            "expected a PKCS#8 \"PRIVATE KEY\", found {:?}",
            parsed.tag()
        )));
    }
    let der = parsed.contents();
    let rng = SystemRandom::new();
    if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
        let point = pair.public_key().as_ref();
        let parts = PublicParts::Ec {
            x: point[1..33].to_vec(),
            y: point[33..65].to_vec(),
        };
        return public_key(Alg::Es256, &parts, PrivateKey::Ec(pair));
    }
    if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
        let parts = PublicParts::Ed(pair.public_key().as_ref().to_vec());
        return public_key(Alg::EdDsa, &parts, PrivateKey::Ed(pair));
    }
    if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_der(der) {
        let parts = PublicParts::Rsa {
            n: key.n().to_bytes_be(),
            e: key.e().to_bytes_be(),
        };
        let pair =
            RsaKeyPair::from_pkcs8(der).map_err(|e| KeyError::Format(format!("RSA key: {e}")))?;
        return public_key(Alg::Rs256, &parts, PrivateKey::Rsa(Arc::new(pair)));
    }
    Err(KeyError::Format(
        "unsupported key: expected P-256, Ed25519 or RSA in PKCS#8".into(),
    ))
}

/// The PKCS#11 signing scheme of a JWS algorithm.
fn scheme(alg: Alg) -> Scheme {
    match alg {
        Alg::Es256 => Scheme::EcdsaP256Sha256,
        Alg::EdDsa => Scheme::Ed25519,
        Alg::Rs256 => Scheme::RsaPkcs1Sha256,
        Alg::Ps256 => Scheme::RsaPssSha256,
    }
}

/// The `kid` (RFC 7638 thumbprint) of a public key.
pub fn kid_of(parts: &PublicParts) -> String {
    let (_, canonical) = jwk_members(parts);
    thumbprint(&canonical)
}

/// A public key's JWK members (without `kid`, `alg`, `use`) and its
/// RFC 7638 §3.2 canonical form.
fn jwk_members(parts: &PublicParts) -> (Value, String) {
    match parts {
        PublicParts::Ec { x, y } => {
            let (x, y) = (b64(x), b64(y));
            let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            (
                json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                canonical,
            )
        }
        PublicParts::Ed(x) => {
            let x = b64(x);
            let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            (json!({"kty": "OKP", "crv": "Ed25519", "x": x}), canonical)
        }
        PublicParts::Rsa { n, e } => {
            let (n, e) = (b64(n), b64(e));
            let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
            (json!({"kty": "RSA", "n": n, "e": e}), canonical)
        }
    }
}

/// A key from its public parts: its JWK with `kid`, `alg` and `use`, its
/// verifying key, and `private` to sign with.
fn public_key(alg: Alg, parts: &PublicParts, private: PrivateKey) -> Result<SigningKey, KeyError> {
    let bad = |e: jsonwebtoken::errors::Error| KeyError::Format(e.to_string());
    let (mut jwk, canonical) = jwk_members(parts);
    let kid = thumbprint(&canonical);
    let text = |m: &str| jwk[m].as_str().unwrap_or_default().to_string();
    let decoding = match parts {
        PublicParts::Ec { .. } => DecodingKey::from_ec_components(&text("x"), &text("y")),
        PublicParts::Ed(_) => DecodingKey::from_ed_components(&text("x")),
        PublicParts::Rsa { .. } => DecodingKey::from_rsa_components(&text("n"), &text("e")),
    }
    .map_err(bad)?;
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg.as_str());
    jwk["use"] = json!("sig");
    Ok(SigningKey::new(alg, private, decoding, kid, jwk))
}

/// The public parts of a stored JWK (a token key's record), checked
/// against the algorithm it must serve.
fn parts_of(jwk: &Value, alg: Alg) -> Result<PublicParts, KeyError> {
    let bytes = |m: &str| {
        jwk[m]
            .as_str()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .ok_or_else(|| KeyError::Format(format!("the stored JWK has no valid {m:?}")))
    };
    match (jwk["kty"].as_str(), alg) {
        (Some("EC"), Alg::Es256) if jwk["crv"] == "P-256" => Ok(PublicParts::Ec {
            x: bytes("x")?,
            y: bytes("y")?,
        }),
        (Some("OKP"), Alg::EdDsa) if jwk["crv"] == "Ed25519" => Ok(PublicParts::Ed(bytes("x")?)),
        (Some("RSA"), Alg::Rs256 | Alg::Ps256) => Ok(PublicParts::Rsa {
            n: bytes("n")?,
            e: bytes("e")?,
        }),
        _ => Err(KeyError::Format(format!(
            "the stored JWK is not a {} key",
            alg.as_str()
        ))),
    }
}

/// A key held in a PKCS#11 token, from its record's public JWK: signed
/// with through `hsm` when this instance has the token, published and
/// verified only otherwise. The JWK's thumbprint must be the record's
/// `kid`.
pub fn token_key(
    record: &SigningKeyRecord,
    hsm: Option<&Arc<Hsm>>,
) -> Result<SigningKey, KeyError> {
    let alg = Alg::parse(&record.alg)
        .ok_or_else(|| KeyError::Format(format!("unknown algorithm {:?}", record.alg)))?;
    let jwk = record
        .public_jwk
        .as_ref()
        .ok_or_else(|| KeyError::Format("a token key's record has no public JWK".into()))?;
    let parts = parts_of(jwk, alg)?;
    let private = match hsm {
        Some(h) => PrivateKey::Hsm(h.clone()),
        None => PrivateKey::PublicOnly,
    };
    let key = public_key(alg, &parts, private)?;
    if key.kid != record.kid {
        return Err(KeyError::Format(format!(
            "the stored public key of {} has another thumbprint",
            record.kid
        )));
    }
    Ok(key)
}

/// Generates a key for `alg` in the PKCS#11 token: the record to store
/// (location `pkcs11`, with the public JWK) and the key.
pub fn create_token_key(hsm: &Arc<Hsm>, alg: Alg) -> Result<(SigningKey, Value), KeyError> {
    let (kid, parts) = hsm
        .generate(scheme(alg), kid_of)
        .map_err(|e| KeyError::Format(e.to_string()))?;
    let key = public_key(alg, &parts, PrivateKey::Hsm(hsm.clone()))?;
    debug_assert_eq!(key.kid, kid);
    let jwk = key.jwk.clone();
    Ok((key, jwk))
}

/// The path of the key file for `kid`.
pub fn key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.pem"))
}

/// Writes a private key file readable only by its owner (mode 0600), creating
/// the directory (mode 0700) when needed.
pub fn write_key_file(dir: &Path, kid: &str, pem_text: &str) -> Result<PathBuf, KeyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io(dir))?;
    secure_dir(dir)?;
    let path = key_path(dir, kid);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(io(&path))?;
    file.write_all(pem_text.as_bytes()).map_err(io(&path))?;
    file.sync_all().map_err(io(&path))?;
    Ok(path)
}

/// Makes an existing keys directory and the key files in it private to the
/// service user (0700 and 0600), whatever created them. A warning names what
/// was tightened when it already held a key (a `.pem` file or a shared
/// secret) that others could have read; tightening a directory that holds
/// none yet (a fresh clone's `keys/`, checked out 0755) is routine and only
/// logged at debug.
pub fn secure_dir(dir: &Path) -> Result<(), KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyError::Io { path, source }
        };
        let tighten = |path: &Path, mode: u32, exposed: bool| -> Result<(), KeyError> {
            let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .map_err(io(path))?;
                if exposed {
                    log::warn!(
                        "{} was readable by other users; its mode is now {mode:o}",
                        path.display()
                    );
                } else {
                    log::debug!(
                        "{} holds no key yet; its mode is now {mode:o}",
                        path.display()
                    );
                }
            }
            Ok(())
        };
        let holds_keys = |dir: &Path| -> Result<bool, KeyError> {
            for entry in std::fs::read_dir(dir).map_err(io(dir))? {
                let path = entry.map_err(io(dir))?.path();
                let ext = path.extension().and_then(|e| e.to_str());
                if matches!(ext, Some("pem") | Some("secret")) {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        match std::fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(KeyError::Io {
                    path: dir.to_path_buf(),
                    source,
                })
            }
            Ok(_) => tighten(dir, 0o700, holds_keys(dir)?)?,
        }
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().and_then(|e| e.to_str()) == Some("pem") {
                tighten(&path, 0o600, true)?;
            }
        }
    }
    Ok(())
}

/// A 32-byte secret shared by every instance that uses the keys directory
/// (a fleet shares it): read from `dir/name`, or created there (0600,
/// exclusively, so that instances starting together agree on one).
pub fn shared_secret(dir: &Path, name: &str) -> Result<Vec<u8>, KeyError> {
    let path = dir.join(name);
    let io = |source| KeyError::Io {
        path: path.clone(),
        source,
    };
    for _ in 0..50 {
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => return Ok(bytes),
            // Another instance is writing it: read again shortly.
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = vec![0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
                    .map_err(|_| io(std::io::Error::other("no randomness")))?;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .create(dir)
                    .map_err(io)?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                match options.open(&path) {
                    Ok(mut file) => {
                        file.write_all(&secret).map_err(io)?;
                        file.sync_all().map_err(io)?;
                        return Ok(secret);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io(e)),
                }
            }
            Err(e) => return Err(io(e)),
        }
    }
    Err(io(std::io::Error::other(
        "the file does not hold a 32-byte secret",
    )))
}

/// Generates a key for `alg` and writes it to the keys directory.
pub fn create_key_file(dir: &Path, alg: Alg) -> Result<SigningKey, KeyError> {
    let text = generate_pem(alg)?;
    let mut key = load_pem(&text)?;
    if key.alg != alg {
        key = key
            .with_alg(alg)
            .ok_or_else(|| KeyError::Format(format!("cannot make a {} key", alg.as_str())))?;
    }
    write_key_file(dir, &key.kid, &text)?;
    Ok(key)
}

/// Loads every `*.pem` file in the directory, keyed by `kid`.
pub fn load_dir(dir: &Path) -> Result<HashMap<String, Arc<SigningKey>>, KeyError> {
    let mut out = HashMap::new();
    secure_dir(dir)?;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(KeyError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries {
        let path = entry
            .map_err(|source| KeyError::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some("pem") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?;
        let key =
            load_pem(&text).map_err(|e| KeyError::Format(format!("{}: {e}", path.display())))?;
        out.insert(key.kid.clone(), Arc::new(key));
    }
    Ok(out)
}

/// Seconds an `iat` may lie ahead of this server's clock (instances of a
/// fleet whose clocks differ a little).
pub const IAT_SKEW: i64 = 60;

/// One published key with its lifecycle.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// The key.
    pub key: Arc<SigningKey>,
    /// Its lifecycle record.
    pub record: SigningKeyRecord,
}

/// The keys in force at one moment: the one that signs, and those published.
#[derive(Debug, Default)]
pub struct KeySet {
    entries: Vec<KeyEntry>,
    max_token_ttl: i64,
}

impl KeySet {
    /// Builds the set from lifecycle records and loaded keys. Records without a
    /// key file are skipped with a warning.
    pub fn new(
        records: &[SigningKeyRecord],
        loaded: &HashMap<String, Arc<SigningKey>>,
        max_token_ttl: i64,
    ) -> KeySet {
        let mut entries = Vec::new();
        for r in records {
            match loaded.get(&r.kid) {
                Some(key) => entries.push(KeyEntry {
                    // The record says the algorithm (an RSA file serves
                    // RS256 or PS256).
                    key: match Alg::parse(&r.alg) {
                        Some(alg) if alg != key.alg => match key.with_alg(alg) {
                            Some(k) => Arc::new(k),
                            None => key.clone(),
                        },
                        _ => key.clone(),
                    },
                    record: r.clone(),
                }),
                None => log::warn!("signing key {} has no key file; skipped", r.kid),
            }
        }
        KeySet {
            entries,
            max_token_ttl,
        }
    }

    /// The key that signs at `now`: among the keys this instance may sign
    /// with (never a file key while its keys are in a PKCS#11 token), the
    /// most recently activated key that is active and not retired (a
    /// compromised key is always retired). When there is none, the key
    /// that is published but activates soonest signs early: an instance
    /// just moved into (or out of) a PKCS#11 token during a rotation, which
    /// must not sign with the other kind of key.
    pub fn signer(&self, now: i64) -> Option<&Arc<SigningKey>> {
        let usable = || {
            self.entries
                .iter()
                .filter(|e| e.key.can_sign() && e.record.compromised_at.is_none())
        };
        usable()
            .filter(|e| e.record.activates_at <= now && e.record.retired_at.is_none_or(|r| r > now))
            .max_by_key(|e| (e.record.activates_at, e.record.created_at))
            .or_else(|| {
                usable()
                    .filter(|e| e.record.retired_at.is_none())
                    .min_by_key(|e| (e.record.activates_at, e.record.created_at))
            })
            .map(|e| &e.key)
    }

    /// Whether a key is published, and trusted, at `now`: from creation until
    /// every token it could have signed has expired (retirement plus the
    /// maximum TTL), and never once it is compromised.
    fn published(&self, e: &KeyEntry, now: i64) -> bool {
        e.record.compromised_at.is_none()
            && e.record
                .retired_at
                .is_none_or(|r| r + self.max_token_ttl > now)
    }

    /// The loaded key for `kid`, trusted or not (to reuse parsed keys when
    /// the set is rebuilt).
    pub fn key(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.entries
            .iter()
            .find(|e| e.key.kid == kid)
            .map(|e| &e.key)
    }

    /// The key that may verify a token with this `kid` at `now`: a published
    /// key. A retired key stops being trusted once every token it signed has
    /// expired; a compromised one at once.
    pub fn verifier(&self, kid: &str, now: i64) -> Option<&Arc<SigningKey>> {
        self.entries
            .iter()
            .find(|e| e.key.kid == kid && self.published(e, now))
            .map(|e| &e.key)
    }

    /// Whether a token that `kid` signed, claiming `iat` and `exp`, can be
    /// active at `now` (RFC 8725 §3.10, RFC 9068 §4): its key is trusted;
    /// its lifetime is no longer than the maximum TTL; `iat` is not in the
    /// future beyond [`IAT_SKEW`]; and it was not issued after its key retired
    /// (a retired key signs nothing, so such a token was made with a stolen key).
    pub fn admits(&self, kid: &str, iat: i64, exp: i64, now: i64) -> bool {
        let Some(e) = self.entries.iter().find(|e| e.key.kid == kid) else {
            return false;
        };
        self.published(e, now)
            && exp.saturating_sub(iat) <= self.max_token_ttl
            && iat <= now.saturating_add(IAT_SKEW)
            && e.record.retired_at.is_none_or(|r| iat <= r)
    }

    /// The JWKS document (RFC 7517 §5) at `now`.
    pub fn jwks(&self, now: i64) -> Value {
        let keys: Vec<&Value> = self
            .entries
            .iter()
            .filter(|e| self.published(e, now))
            .map(|e| &e.key.jwk)
            .collect();
        json!({ "keys": keys })
    }

    /// Lifecycle records of the keys in the set.
    pub fn records(&self) -> Vec<SigningKeyRecord> {
        self.entries.iter().map(|e| e.record.clone()).collect()
    }
}

/// The shared, swappable key set, with the store's change marker at which
/// it was loaded (so a reader can tell that it may be stale). A background
/// task, and any reader that sees the marker move, replaces it.
#[derive(Debug, Default)]
pub struct KeyRing {
    current: RwLock<Arc<KeySet>>,
    marker: std::sync::atomic::AtomicI64,
}

impl KeyRing {
    /// A ring holding `set`.
    pub fn new(set: KeySet) -> KeyRing {
        KeyRing {
            current: RwLock::new(Arc::new(set)),
            marker: Default::default(),
        }
    }

    /// The set in force.
    pub fn get(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the set.
    pub fn set(&self, set: KeySet) {
        let mut guard = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(set);
    }

    /// The signing-key generation (see `CachedStore::keys_generation`) the
    /// set was last checked against.
    pub fn marker(&self) -> i64 {
        self.marker.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records that the set matches the records as of generation `marker`.
    pub fn checked_at(&self, marker: i64) {
        self.marker
            .store(marker, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{sign, verify, Audience, Claims, VerifyError};

    fn claims(now: i64) -> Claims {
        Claims {
            iss: "http://issuer".into(),
            sub: "c".into(),
            aud: Audience::One("https://api".into()),
            exp: now + 60,
            iat: now,
            jti: "j".into(),
            client_id: "c".into(),
            scope: "read".into(),
            api_key_id: None,
            cnf: None,
            act: None,
            may_act: None,
            origin: Vec::new(),
            extra: serde_json::Map::new(),
        }
    }

    fn set_with(key: SigningKey) -> KeySet {
        let rec = SigningKeyRecord::new(&key.kid, key.alg.as_str(), 0, 0);
        let mut m = HashMap::new();
        m.insert(key.kid.clone(), Arc::new(key));
        KeySet::new(&[rec], &m, 86_400)
    }

    #[test]
    fn every_algorithm_signs_and_verifies_round_trip() {
        for alg in [Alg::Es256, Alg::EdDsa, Alg::Rs256, Alg::Ps256] {
            let mut key = load_pem(&generate_pem(alg).unwrap()).unwrap();
            if alg == Alg::Ps256 {
                // The same PKCS#8 RSA file; the record makes it PS256.
                assert_eq!(key.alg, Alg::Rs256);
                key = key.with_alg(Alg::Ps256).unwrap();
                assert_eq!(key.jwk["alg"], "PS256");
            }
            assert_eq!(key.alg, alg);
            let set = set_with(key);
            let signer = set.signer(1).unwrap().clone();
            let token = sign(&claims(1000), &signer).unwrap();
            assert_eq!(
                verify(&token, &set, "http://issuer", 1000).unwrap(),
                claims(1000)
            );
            assert_eq!(
                verify(&token, &set, "http://other", 1000),
                Err(VerifyError::ForeignIssuer)
            );
            assert_eq!(
                verify(&token, &set, "http://issuer", 1060),
                Err(VerifyError::Expired)
            );
        }
    }

    #[test]
    fn a_ps256_record_makes_an_rsa_file_sign_with_pss() {
        let key = load_pem(&generate_pem(Alg::Rs256).unwrap()).unwrap();
        let rec = SigningKeyRecord::new(&key.kid, "PS256", 0, 0);
        let mut m = HashMap::new();
        m.insert(key.kid.clone(), Arc::new(key));
        let set = KeySet::new(&[rec], &m, 86_400);
        let signer = set.signer(1).unwrap().clone();
        assert_eq!(signer.alg, Alg::Ps256);
        let token = sign(&claims(1000), &signer).unwrap();
        let header = crate::token::jws::Jws::parse(&token).unwrap();
        assert_eq!(header.text("alg"), Some("PS256"));
        assert_eq!(
            verify(&token, &set, "http://issuer", 1000).unwrap(),
            claims(1000)
        );
        assert_eq!(set.jwks(1)["keys"][0]["alg"], "PS256");
        // PSS signatures are randomised: two signatures of one input differ.
        assert_ne!(sign(&claims(1000), &signer).unwrap(), token);
        assert!(load_pem(&generate_pem(Alg::Es256).unwrap())
            .unwrap()
            .with_alg(Alg::Ps256)
            .is_none());
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 7638 §3.1 example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let canonical = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#);
        assert_eq!(
            thumbprint(&canonical),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    fn set_of(record: SigningKeyRecord, max_ttl: i64) -> (KeySet, String) {
        let key = load_pem(&generate_pem(Alg::Es256).unwrap()).unwrap();
        let kid = key.kid.clone();
        let mut m = HashMap::new();
        m.insert(kid.clone(), Arc::new(key));
        let record = SigningKeyRecord {
            kid: kid.clone(),
            ..record
        };
        (KeySet::new(&[record], &m, max_ttl), kid)
    }

    fn record(retired_at: Option<i64>, compromised_at: Option<i64>) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: String::new(),
            alg: "ES256".into(),
            created_at: 0,
            activates_at: 0,
            retired_at,
            compromised_at,
            location: Default::default(),
            public_jwk: None,
        }
    }

    #[test]
    fn impossible_times_are_never_admitted() {
        let (set, kid) = set_of(record(None, None), 3600);
        assert!(set.admits(&kid, 1000, 1000 + 3600, 1000));
        assert!(
            !set.admits(&kid, 1000, 1000 + 3601, 1000),
            "lifetime over the maximum"
        );
        assert!(set.admits(&kid, 1000 + IAT_SKEW, 1000 + IAT_SKEW + 60, 1000));
        assert!(
            !set.admits(&kid, 1001 + IAT_SKEW, 1001 + IAT_SKEW + 60, 1000),
            "iat in the future"
        );
        assert!(!set.admits("other", 1000, 1060, 1000), "unknown key");
    }

    #[test]
    fn a_retired_key_admits_only_tokens_from_before_its_retirement_until_they_expire() {
        let (set, kid) = set_of(record(Some(100), None), 50);
        assert!(set.admits(&kid, 90, 140, 120));
        assert!(
            set.admits(&kid, 100, 140, 120),
            "issued in the second of retirement"
        );
        assert!(
            !set.admits(&kid, 101, 140, 120),
            "issued after retirement: a stolen key"
        );
        assert!(set.verifier(&kid, 149).is_some());
        assert!(
            set.verifier(&kid, 150).is_none(),
            "no longer trusted at all"
        );
        assert!(!set.admits(&kid, 90, 140, 150));
    }

    #[test]
    fn a_compromised_key_admits_nothing_and_is_not_published() {
        let (set, kid) = set_of(record(Some(100), Some(100)), 3600);
        assert!(set.verifier(&kid, 101).is_none());
        assert!(!set.admits(&kid, 90, 140, 101));
        assert_eq!(set.jwks(101)["keys"].as_array().unwrap().len(), 0);
        assert!(set.signer(50).is_none());
        assert!(set.key(&kid).is_some(), "still loaded, for reloads");
    }

    #[test]
    fn verification_refuses_tokens_a_stolen_retired_key_signs() {
        let (set, kid) = set_of(record(Some(1000), None), 3600);
        let key = set.key(&kid).unwrap().clone();
        let mut c = claims(900);
        c.exp = 1500;
        let ok = sign(&c, &key).unwrap();
        assert!(verify(&ok, &set, "http://issuer", 1100).is_ok());
        c.iat = 1050;
        let forged = sign(&c, &key).unwrap();
        assert_eq!(
            verify(&forged, &set, "http://issuer", 1100),
            Err(VerifyError::Untrusted)
        );
        let cache = crate::token::VerifiedCache::default();
        assert!(cache.verify(&ok, &set, "http://issuer", 1100).is_some());
        // Compromised after the first check: the cached answer is not reused.
        let compromised = KeySet::new(
            &[SigningKeyRecord {
                kid: kid.clone(),
                ..record(Some(1000), Some(1100))
            }],
            &[(kid.clone(), key.clone())].into_iter().collect(),
            3600,
        );
        assert!(cache
            .verify(&ok, &compromised, "http://issuer", 1101)
            .is_none());
    }

    #[test]
    fn the_verified_cache_is_bounded_by_bytes() {
        let (set, kid) = set_of(record(None, None), 3600);
        let key = set.key(&kid).unwrap().clone();
        let token = |jti: &str, exp: i64| {
            let mut c = claims(1000);
            c.jti = jti.into();
            c.exp = exp;
            sign(&c, &key).unwrap()
        };
        let first = token("jx", 2000);
        let probe = crate::token::VerifiedCache::default();
        assert!(probe.verify(&first, &set, "http://issuer", 1000).is_some());
        let one = probe.bytes();
        assert!(one > 100, "{one}");
        eprintln!("a verified token: {one} bytes");
        // Room for three entries of this size.
        let cache = crate::token::VerifiedCache::with_budget(one * 3);
        for (i, exp) in [2000, 1100, 2000].into_iter().enumerate() {
            let t = token(&format!("j{i}"), exp);
            assert!(cache.verify(&t, &set, "http://issuer", 1000).is_some());
        }
        assert_eq!(cache.bytes(), one * 3);
        // A fourth, once the second has expired: the expired one goes.
        let t = token("j3", 2000);
        assert!(cache.verify(&t, &set, "http://issuer", 1200).is_some());
        assert_eq!(cache.bytes(), one * 3);
        // A fifth with nothing expired: the cache starts again.
        let t = token("j4", 2000);
        assert!(cache.verify(&t, &set, "http://issuer", 1200).is_some());
        assert_eq!(cache.bytes(), one);
    }

    #[test]
    fn retired_key_leaves_jwks_after_max_ttl_and_stops_signing() {
        let key = load_pem(&generate_pem(Alg::Es256).unwrap()).unwrap();
        let kid = key.kid.clone();
        let rec = SigningKeyRecord {
            kid: kid.clone(),
            alg: "ES256".into(),
            created_at: 0,
            activates_at: 0,
            retired_at: Some(100),
            compromised_at: None,
            location: Default::default(),
            public_jwk: None,
        };
        let mut m = HashMap::new();
        m.insert(kid, Arc::new(key));
        let set = KeySet::new(&[rec], &m, 50);
        assert!(set.signer(100).is_none());
        assert_eq!(set.jwks(149)["keys"].as_array().unwrap().len(), 1);
        assert_eq!(set.jwks(150)["keys"].as_array().unwrap().len(), 0);
    }
}
