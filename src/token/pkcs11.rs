//! Signing keys held in a PKCS#11 token (an HSM; softhsm2 in the tests),
//! through the `cryptoki` crate: generated on the token as sensitive,
//! non-extractable private keys, used through a pool of sessions, and
//! reconnected after a failure. Tollgate never holds their private bytes,
//! and never signs with a software key in their place.
//!
//! PKCS#11 v2.40 (OASIS) is the reference: §5.4 `C_Initialize`, §5.6
//! sessions and `C_Login` (a login holds for every session of the
//! application until its last session closes, so one session stays open
//! for the connection's life), §5.7 `C_FindObjects`, §5.11 `C_Sign`, §5.14
//! `C_GenerateKeyPair`; object handles are valid in every session of the
//! application (§2.4).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

/// DER of the OID of P-256 (prime256v1, 1.2.840.10045.3.1.7): `CKA_EC_PARAMS`.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the OID of Ed25519 (1.3.101.112), RFC 8410 §3: `CKA_EC_PARAMS`.
const ED25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// The label a key pair carries between its generation and its naming by
/// `kid` (its thumbprint, known only once the token has made it).
const PENDING_LABEL: &[u8] = b"tollgate-pending";
/// At most this many idle sessions are kept for reuse.
const MAX_IDLE_SESSIONS: usize = 32;
/// At most one connection attempt a second.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// How a key signs, in PKCS#11's terms (the JWS algorithm it serves is the
/// caller's business: `keys` maps ES256, EdDSA, RS256 and PS256 to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// ECDSA on P-256 over a SHA-256 digest, R‖S (RFC 7518 §3.4).
    EcdsaP256Sha256,
    /// Ed25519 (RFC 8037).
    Ed25519,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    RsaPkcs1Sha256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, a 32-byte salt (RFC 7518 §3.5).
    RsaPssSha256,
}

/// Where the token is: the module, the token's label and the file that
/// holds the user PIN (never the PIN itself in a setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Settings {
    /// Path of the PKCS#11 module (`libsofthsm2.so`, a vendor's library).
    pub module: PathBuf,
    /// `CKA_LABEL` of the token (`TokenInfo.label`).
    pub token_label: String,
    /// A file whose content (trailing newline ignored) is the user PIN.
    pub pin_file: PathBuf,
}

/// Why the token did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HsmError {
    /// The token cannot be reached now (module, token, PIN or session):
    /// answer 503 and try again.
    #[error("the PKCS#11 token is unavailable: {0}")]
    Unavailable(String),
    /// The token answered, but not with a key Tollgate can use.
    #[error("PKCS#11: {0}")]
    Key(String),
}

/// A public key as read from the token: the parts of its JWK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicParts {
    /// P-256: the uncompressed point's x and y.
    Ec {
        /// x, 32 bytes.
        x: Vec<u8>,
        /// y, 32 bytes.
        y: Vec<u8>,
    },
    /// Ed25519: the 32-byte public key.
    Ed(Vec<u8>),
    /// RSA: modulus and public exponent, big-endian.
    Rsa {
        /// n.
        n: Vec<u8>,
        /// e.
        e: Vec<u8>,
    },
}

/// One connection to the token: a context, the slot, the session that
/// logged in, idle sessions, and the private keys' handles by `kid`.
struct Conn {
    slot: Slot,
    /// Idle sessions, taken by one signature at a time.
    idle: Mutex<Vec<Session>>,
    /// Private-key handles by `kid`, valid in every session.
    handles: RwLock<HashMap<String, ObjectHandle>>,
    /// The session that logged in; kept open so the login holds.
    _login: Mutex<Session>,
    /// The module's context; dropped last (it finalizes the module).
    ctx: Pkcs11,
}

/// A failure callback (a metric counts them), by reason.
type OnFailure = Box<dyn Fn(&'static str) + Send + Sync>;

/// The token, shared by every key it holds: connects on first use,
/// reconnects after a failure (at most once a second), and never retries
/// a PIN the token refused until the PIN file changes (a real HSM locks
/// the PIN after a few failures).
pub struct Hsm {
    settings: Pkcs11Settings,
    conn: RwLock<Option<Arc<Conn>>>,
    /// Connections dropped after a failure, finalized once no signature
    /// still runs on them (`C_Finalize` is process-wide: a new connection
    /// waits for them).
    retired: Mutex<Vec<Arc<Conn>>>,
    last_attempt: Mutex<Option<Instant>>,
    refused_pin: Mutex<Option<Vec<u8>>>,
    last_error: Mutex<Option<String>>,
    on_failure: RwLock<Option<OnFailure>>,
}

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm")
            .field("module", &self.settings.module)
            .field("token_label", &self.settings.token_label)
            .finish_non_exhaustive()
    }
}

fn ck(e: CkError) -> String {
    e.to_string()
}

/// Whether a failure is the token's or the session's, so the connection
/// is dropped and made again, rather than a refusal of one request.
fn lost(e: &CkError) -> bool {
    match e {
        CkError::Pkcs11(rv, _) => !matches!(
            rv,
            RvError::MechanismInvalid
                | RvError::MechanismParamInvalid
                | RvError::KeyTypeInconsistent
                | RvError::KeyFunctionNotPermitted
                | RvError::DataLenRange
                | RvError::DataInvalid
                | RvError::TemplateInconsistent
                | RvError::TemplateIncomplete
                | RvError::AttributeValueInvalid
                | RvError::AttributeTypeInvalid
        ),
        _ => true,
    }
}

impl Hsm {
    /// A token to connect to on first use.
    pub fn new(settings: Pkcs11Settings) -> Hsm {
        Hsm {
            settings,
            conn: RwLock::new(None),
            retired: Mutex::new(Vec::new()),
            last_attempt: Mutex::new(None),
            refused_pin: Mutex::new(None),
            last_error: Mutex::new(None),
            on_failure: RwLock::new(None),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &Pkcs11Settings {
        &self.settings
    }

    /// Calls `f` with a reason (`connect`, `login`, `sign`, `generate`)
    /// for every failure.
    pub fn on_failure(&self, f: OnFailure) {
        *self.on_failure.write().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    fn failed(&self, reason: &'static str, why: &str) {
        log::warn!("PKCS#11 {reason} failed: {why}");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
        if let Some(f) = &*self.on_failure.read().unwrap_or_else(|p| p.into_inner()) {
            f(reason);
        }
    }

    /// The last failure, if any (for readiness and logs; never a PIN).
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether a connection is up now.
    pub fn connected(&self) -> bool {
        self.conn
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Drops the connection after a failure; the next use reconnects.
    fn drop_conn(&self) {
        let old = self.conn.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(old) = old {
            self.retired
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(old);
        }
    }

    /// The connection, made now if there is none and the last attempt was
    /// over a second ago.
    fn conn(&self) -> Result<Arc<Conn>, HsmError> {
        if let Some(c) = &*self.conn.read().unwrap_or_else(|p| p.into_inner()) {
            return Ok(c.clone());
        }
        let mut slot = self.conn.write().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        {
            let mut last = self.last_attempt.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < RETRY_EVERY) {
                return Err(HsmError::Unavailable(
                    self.last_error()
                        .unwrap_or_else(|| "reconnecting to the token".into()),
                ));
            }
            *last = Some(Instant::now());
        }
        {
            // C_Finalize is process-wide: the old contexts go first, once
            // no signature runs on them any more.
            let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
            if retired.iter().any(|c| Arc::strong_count(c) > 1) {
                return Err(HsmError::Unavailable(
                    "the previous connection is still in use".into(),
                ));
            }
            retired.clear();
        }
        match self.connect() {
            Ok(c) => {
                let c = Arc::new(c);
                *slot = Some(c.clone());
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                log::info!(
                    "PKCS#11 token {:?} connected through {}",
                    self.settings.token_label,
                    self.settings.module.display()
                );
                Ok(c)
            }
            Err((reason, why)) => {
                self.failed(reason, &why);
                Err(HsmError::Unavailable(why))
            }
        }
    }

    fn read_pin(&self) -> Result<String, (&'static str, String)> {
        let text = std::fs::read_to_string(&self.settings.pin_file).map_err(|e| {
            (
                "login",
                format!("PIN file {}: {e}", self.settings.pin_file.display()),
            )
        })?;
        let pin = text.trim_end_matches(['\r', '\n']).to_string();
        let digest = crate::secret::digest(pin.as_bytes()).to_vec();
        if self
            .refused_pin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            == Some(&digest)
        {
            return Err((
                "login",
                "the token refused the PIN; waiting for the PIN file to change".into(),
            ));
        }
        Ok(pin)
    }

    fn connect(&self) -> Result<Conn, (&'static str, String)> {
        let pin = self.read_pin()?;
        let connect = |e: CkError| ("connect", ck(e));
        let ctx = Pkcs11::new(&self.settings.module).map_err(|e| {
            (
                "connect",
                format!("module {}: {e}", self.settings.module.display()),
            )
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(connect(e)),
        }
        let wanted = self.settings.token_label.as_str();
        let slot = ctx
            .get_slots_with_token()
            .map_err(connect)?
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .is_ok_and(|t| t.label().trim_end() == wanted)
            })
            .ok_or_else(|| ("connect", format!("no token labelled {wanted:?}")))?;
        let login = ctx.open_rw_session(slot).map_err(connect)?;
        match login.login(UserType::User, Some(&AuthPin::from(pin.clone()))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(
                rv @ (RvError::PinIncorrect
                | RvError::PinInvalid
                | RvError::PinLenRange
                | RvError::PinExpired
                | RvError::PinLocked),
                _,
            )) => {
                *self.refused_pin.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(crate::secret::digest(pin.as_bytes()).to_vec());
                return Err(("login", format!("the token refused the PIN: {rv}")));
            }
            Err(e) => return Err(("login", ck(e))),
        }
        Ok(Conn {
            slot,
            idle: Mutex::new(Vec::new()),
            handles: RwLock::new(HashMap::new()),
            _login: Mutex::new(login),
            ctx,
        })
    }

    /// Runs `f` on a session of the connection (an idle one, or a new
    /// one); a failure that lost the token or the session drops the
    /// connection, and every failure is counted under `reason`.
    fn with_session<T>(
        &self,
        reason: &'static str,
        f: impl FnOnce(&Conn, &Session) -> Result<T, CkError>,
    ) -> Result<T, HsmError> {
        let conn = self.conn()?;
        let session = match conn.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            Some(s) => s,
            None => match conn.ctx.open_rw_session(conn.slot) {
                Ok(s) => s,
                Err(e) => {
                    let why = ck(e);
                    self.failed("connect", &why);
                    self.drop_conn();
                    return Err(HsmError::Unavailable(why));
                }
            },
        };
        match f(&conn, &session) {
            Ok(v) => {
                let mut idle = conn.idle.lock().unwrap_or_else(|p| p.into_inner());
                if idle.len() < MAX_IDLE_SESSIONS {
                    idle.push(session);
                }
                Ok(v)
            }
            Err(e) => {
                let why = e.to_string();
                self.failed(reason, &why);
                if lost(&e) {
                    drop(session);
                    self.drop_conn();
                    Err(HsmError::Unavailable(why))
                } else {
                    Err(HsmError::Key(why))
                }
            }
        }
    }

    /// Signs `message` (a JWS signing input) with the token's key `kid`
    /// under `scheme`; the raw JWS signature (RFC 7518 §3.4: R‖S for ECDSA).
    pub fn sign(&self, kid: &str, scheme: Scheme, message: &[u8]) -> Result<Vec<u8>, HsmError> {
        let digest;
        let (mechanism, data): (Mechanism, &[u8]) = match scheme {
            // CKM_ECDSA signs a digest: the portable form (not every token
            // has CKM_ECDSA_SHA256).
            Scheme::EcdsaP256Sha256 => {
                digest = ring::digest::digest(&ring::digest::SHA256, message);
                (Mechanism::Ecdsa, digest.as_ref())
            }
            Scheme::Ed25519 => (
                Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                message,
            ),
            Scheme::RsaPkcs1Sha256 => (Mechanism::Sha256RsaPkcs, message),
            // RFC 7518 §3.5: MGF1 with SHA-256, a 32-byte salt.
            Scheme::RsaPssSha256 => (
                Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
                    hash_alg: MechanismType::SHA256,
                    mgf: PkcsMgfType::MGF1_SHA256,
                    s_len: 32.into(),
                }),
                message,
            ),
        };
        let handle = self.handle(kid)?;
        self.with_session("sign", |_, s| s.sign(&mechanism, handle, data))
    }

    /// The private key `kid`'s handle, found once per connection.
    fn handle(&self, kid: &str) -> Result<ObjectHandle, HsmError> {
        let conn = self.conn()?;
        if let Some(h) = conn
            .handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
        {
            return Ok(*h);
        }
        let found = self.with_session("sign", |_, s| {
            s.find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(kid.as_bytes().to_vec()),
            ])
        })?;
        match found.as_slice() {
            [h] => {
                conn.handles
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(kid.to_string(), *h);
                Ok(*h)
            }
            [] => {
                let why = format!("the token holds no private key labelled {kid}");
                self.failed("sign", &why);
                Err(HsmError::Key(why))
            }
            _ => {
                let why = format!("the token holds several private keys labelled {kid}");
                self.failed("sign", &why);
                Err(HsmError::Key(why))
            }
        }
    }

    /// Generates a key pair for `scheme` on the token: the private key
    /// sensitive, not extractable, for signing only, and both halves
    /// stored on the token. `name` turns the public parts into the `kid`
    /// the pair is then labelled with.
    pub fn generate(
        &self,
        scheme: Scheme,
        name: impl Fn(&PublicParts) -> String,
    ) -> Result<(String, PublicParts), HsmError> {
        let mut id = vec![0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| HsmError::Key("no randomness".into()))?;
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::Label(PENDING_LABEL.to_vec()),
            Attribute::Id(id.clone()),
        ];
        let private = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Label(PENDING_LABEL.to_vec()),
            Attribute::Id(id),
        ];
        let mechanism = match scheme {
            Scheme::EcdsaP256Sha256 => {
                public.push(Attribute::EcParams(P256_PARAMS.to_vec()));
                Mechanism::EccKeyPairGen
            }
            Scheme::Ed25519 => {
                public.push(Attribute::EcParams(ED25519_PARAMS.to_vec()));
                Mechanism::EccEdwardsKeyPairGen
            }
            Scheme::RsaPkcs1Sha256 | Scheme::RsaPssSha256 => {
                public.push(Attribute::ModulusBits(2048u64.into()));
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        let made = self.with_session("generate", |_, s| {
            let (pub_h, priv_h) = s.generate_key_pair(&mechanism, &public, &private)?;
            let attrs = s.get_attributes(
                pub_h,
                &[
                    AttributeType::EcPoint,
                    AttributeType::Modulus,
                    AttributeType::PublicExponent,
                ],
            )?;
            Ok((pub_h, priv_h, attrs))
        })?;
        let (pub_h, priv_h, attrs) = made;
        let parts = public_parts(scheme, &attrs)?;
        let kid = name(&parts);
        self.with_session("generate", |_, s| {
            for h in [pub_h, priv_h] {
                s.update_attributes(h, &[Attribute::Label(kid.as_bytes().to_vec())])?;
            }
            Ok(())
        })?;
        Ok((kid, parts))
    }
}

/// The public parts of a generated key from its attributes (`CKA_EC_POINT`
/// is a DER OCTET STRING on most tokens, the bare point on a few).
fn public_parts(scheme: Scheme, attrs: &[Attribute]) -> Result<PublicParts, HsmError> {
    let bad = |what: &str| HsmError::Key(format!("the token's public key: {what}"));
    let point = attrs.iter().find_map(|a| match a {
        Attribute::EcPoint(p) => Some(unwrap_octets(p)),
        _ => None,
    });
    match scheme {
        Scheme::EcdsaP256Sha256 => {
            let p = point.ok_or_else(|| bad("no EC point"))?;
            if p.len() != 65 || p[0] != 0x04 {
                return Err(bad("not an uncompressed P-256 point"));
            }
            Ok(PublicParts::Ec {
                x: p[1..33].to_vec(),
                y: p[33..65].to_vec(),
            })
        }
        Scheme::Ed25519 => {
            let p = point.ok_or_else(|| bad("no EC point"))?;
            if p.len() != 32 {
                return Err(bad("not a 32-byte Ed25519 key"));
            }
            Ok(PublicParts::Ed(p.to_vec()))
        }
        Scheme::RsaPkcs1Sha256 | Scheme::RsaPssSha256 => {
            let n = attrs.iter().find_map(|a| match a {
                Attribute::Modulus(n) => Some(n.clone()),
                _ => None,
            });
            let e = attrs.iter().find_map(|a| match a {
                Attribute::PublicExponent(e) => Some(e.clone()),
                _ => None,
            });
            match (n, e) {
                (Some(n), Some(e)) => Ok(PublicParts::Rsa {
                    n: strip_zeros(n),
                    e: strip_zeros(e),
                }),
                _ => Err(bad("no modulus or exponent")),
            }
        }
    }
}

/// The content of a short DER OCTET STRING, or the bytes as they are.
fn unwrap_octets(p: &[u8]) -> &[u8] {
    match p {
        [0x04, len, rest @ ..] if *len as usize == rest.len() && *len < 0x80 => rest,
        [0x04, 0x81, len, rest @ ..] if *len as usize == rest.len() => rest,
        _ => p,
    }
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros.min(v.len().saturating_sub(1)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_points_are_read_wrapped_or_bare() {
        let mut point = vec![0x04];
        point.extend([7u8; 64]);
        let mut wrapped = vec![0x04, 65];
        wrapped.extend(&point);
        for form in [&point, &wrapped] {
            let parts =
                public_parts(Scheme::EcdsaP256Sha256, &[Attribute::EcPoint(form.clone())]).unwrap();
            assert_eq!(
                parts,
                PublicParts::Ec {
                    x: vec![7; 32],
                    y: vec![7; 32]
                }
            );
        }
        assert!(public_parts(
            Scheme::EcdsaP256Sha256,
            &[Attribute::EcPoint(vec![0x04, 1, 2])]
        )
        .is_err());
        let ed = [vec![0x04, 32], vec![9u8; 32]].concat();
        assert_eq!(
            public_parts(Scheme::Ed25519, &[Attribute::EcPoint(ed)]).unwrap(),
            PublicParts::Ed(vec![9; 32])
        );
    }

    #[test]
    fn rsa_parts_lose_leading_zeros() {
        let parts = public_parts(
            Scheme::RsaPssSha256,
            &[
                Attribute::Modulus(vec![0, 0xc1, 2]),
                Attribute::PublicExponent(vec![0, 1, 0, 1]),
            ],
        )
        .unwrap();
        assert_eq!(
            parts,
            PublicParts::Rsa {
                n: vec![0xc1, 2],
                e: vec![1, 0, 1]
            }
        );
    }

    #[test]
    fn a_missing_module_is_unavailable_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("pin");
        std::fs::write(&pin, "1234\n").unwrap();
        let hsm = Hsm::new(Pkcs11Settings {
            module: dir.path().join("no-such-module.so"),
            token_label: "t".into(),
            pin_file: pin,
        });
        let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = failures.clone();
        hsm.on_failure(Box::new(move |reason| {
            assert_eq!(reason, "connect");
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        assert!(matches!(
            hsm.sign("kid", Scheme::EcdsaP256Sha256, b"m"),
            Err(HsmError::Unavailable(_))
        ));
        // At most one attempt a second: the second call does not retry.
        assert!(hsm.sign("kid", Scheme::EcdsaP256Sha256, b"m").is_err());
        assert_eq!(failures.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(!hsm.connected());
    }
}
