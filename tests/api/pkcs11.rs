//! Signing keys in a PKCS#11 token (Debian's softhsm2): made on the token as
//! sensitive, non-extractable keys; tokens verify against the JWKS with an
//! independent verifier; 503 while the token cannot sign, and back by
//! itself; never a file key instead; a fleet on one token directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{eventually, json, pg_or_skip, s, segment, TestApp};
use crate::verify::verify_with_jwks;

/// Where Debian installs the module.
const MODULES: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];
const LABEL: &str = "tollgate";
// Distinctive, so that a search of the logs for it cannot match a port,
// a counter or a timestamp by chance.
const PIN: &str = "tg-pin-5821";
const WRONG_PIN: &str = "tg-wrong-pin-3307";

/// A softhsm2 token directory of its own, initialised with one token.
pub struct SoftHsm {
    dir: tempfile::TempDir,
    module: String,
}

impl SoftHsm {
    /// A fresh token, or `None` (with a SKIPPED line) when softhsm2 is not
    /// installed; `TOLLGATE_TEST_PKCS11=required` (set by `.ci/run`) makes
    /// that a failure instead.
    pub fn or_skip(test: &str) -> Option<SoftHsm> {
        let module = MODULES.iter().find(|m| Path::new(m).exists());
        let Some(module) = module else {
            assert!(
                std::env::var("TOLLGATE_TEST_PKCS11").as_deref() != Ok("required"),
                "{test}: softhsm2 is required (TOLLGATE_TEST_PKCS11=required) but not installed"
            );
            eprintln!(
                "SKIPPED {test}: install softhsm2 and opensc (apt-get install softhsm2 opensc)"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("tokens dir");
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("conf");
        std::fs::write(dir.path().join("pin"), format!("{PIN}\n")).expect("pin file");
        let hsm = SoftHsm {
            dir,
            module: module.to_string(),
        };
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", hsm.conf())
            .args([
                "--init-token",
                "--free",
                "--label",
                LABEL,
                "--pin",
                PIN,
                "--so-pin",
                "5678",
            ])
            .output()
            .expect("softhsm2-util");
        assert!(out.status.success(), "{out:?}");
        Some(hsm)
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    fn tokens(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    pub fn pin_file(&self) -> PathBuf {
        self.dir.path().join("pin")
    }

    /// The settings an instance needs to keep its keys in this token.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("SOFTHSM2_CONF".into(), self.conf().display().to_string()),
            ("TOLLGATE_PKCS11_MODULE".into(), self.module.clone()),
            ("TOLLGATE_PKCS11_TOKEN_LABEL".into(), LABEL.into()),
            (
                "TOLLGATE_PKCS11_PIN_FILE".into(),
                self.pin_file().display().to_string(),
            ),
        ]
    }

    /// `pkcs11-tool` (OpenSC) logged in to the token.
    fn tool(&self, args: &[&str]) -> Output {
        Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", self.conf())
            .args([
                "--module",
                &self.module,
                "--token-label",
                LABEL,
                "--login",
                "--pin",
                PIN,
            ])
            .args(args)
            .output()
            .expect("pkcs11-tool (install opensc)")
    }
}

impl SoftHsm {
    /// Asks the token itself, through PKCS#11 from this test process, for
    /// the private key's value: `CKA_SENSITIVE` keeps it from being read,
    /// and wrapping it out fails (`CKA_EXTRACTABLE` false).
    fn assert_private_value_is_sensitive(&self, kid: &str) {
        use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
        use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
        use cryptoki::session::UserType;
        std::env::set_var("SOFTHSM2_CONF", self.conf());
        let ctx = Pkcs11::new(&self.module).unwrap();
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .unwrap();
        let slot = ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == LABEL)
            .expect("the token");
        let session = ctx.open_rw_session(slot).unwrap();
        session
            .login(UserType::User, Some(&cryptoki::types::AuthPin::from(PIN)))
            .unwrap();
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(kid.as_bytes().to_vec()),
            ])
            .unwrap();
        assert_eq!(found.len(), 1);
        let info = session
            .get_attribute_info(found[0], &[AttributeType::Value])
            .unwrap();
        assert!(
            matches!(info.as_slice(), [AttributeInfo::Sensitive]),
            "{info:?}"
        );
        let attrs = session
            .get_attributes(
                found[0],
                &[AttributeType::Sensitive, AttributeType::Extractable],
            )
            .unwrap();
        assert!(attrs.contains(&Attribute::Sensitive(true)), "{attrs:?}");
        assert!(attrs.contains(&Attribute::Extractable(false)), "{attrs:?}");
    }
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

async fn jwks(app: &TestApp) -> Value {
    json(
        app.http
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("jwks"),
    )
    .await
    .1
}

async fn signing_keys(app: &TestApp, admin: &str) -> Vec<Value> {
    let (status, v) = json(
        app.http
            .get(app.url("/admin/signing-keys"))
            .bearer_auth(admin)
            .send()
            .await
            .expect("keys"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["data"].as_array().expect("data").clone()
}

async fn rotate(app: &TestApp, admin: &str, alg: &str) -> Value {
    let (status, v) = json(
        app.http
            .post(app.url("/admin/signing-keys/rotate"))
            .bearer_auth(admin)
            .json(&json!({"alg": alg, "prepublish_seconds": 0}))
            .send()
            .await
            .expect("rotate"),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    v
}

/// Waits up to 5 s for the client to get a token again.
async fn signs_again(app: &TestApp, id: &str, secret: &str, what: &str) {
    eventually(what, Duration::from_secs(5), || async {
        app.token_request(id, secret, None).await.status() == 200
    })
    .await;
}

/// A token's `kid`, after checking its signature with the served JWKS.
async fn verified_kid(app: &TestApp, token: &str) -> String {
    let jwks = jwks(app).await;
    verify_with_jwks(token, &jwks).unwrap_or_else(|e| panic!("{e}: {token}"));
    s(&segment(token, 0)["kid"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_made_in_the_token_and_never_leave_it() {
    let Some(hsm) = SoftHsm::or_skip("signing_keys_are_made_in_the_token_and_never_leave_it")
    else {
        return;
    };
    let env = hsm.env();
    let mut app = TestApp::spawn_with(&pairs(&env)).await;
    let admin = app.admin_token().await;
    let keys = signing_keys(&app, &admin).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["location"], "pkcs11");
    assert_eq!(keys[0]["alg"], "ES256");
    let first = s(&keys[0]["kid"]);
    assert_eq!(keys[0]["public_jwk"]["kid"], first.as_str());

    // Tokens are signed by the token's key and verify against the JWKS.
    let (id, secret) = app.client("read", &["https://api"]);
    let token = app.token(&id, &secret).await;
    assert_eq!(verified_kid(&app, &token).await, first);

    // No private key anywhere but the token: no key file, nothing in the
    // database that looks like one.
    let pem_files = std::fs::read_dir(&app.keys_dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "pem"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(pem_files, 0, "no key file is written");
    let stored = app.stored_text().await;
    assert!(!stored.contains("PRIVATE KEY"));
    assert!(
        !stored.contains("\"d\":"),
        "no private JWK member is stored"
    );

    // OpenSC sees the key on the token, sensitive and never extractable,
    // for signing only; reading it out fails.
    let listed = hsm.tool(&["--list-objects", "--type", "privkey"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.contains(&first), "{listed}");
    assert!(listed.contains("never extractable"), "{listed}");
    assert!(listed.contains("sensitive"), "{listed}");
    assert!(!listed.contains("decrypt"), "signing only: {listed}");
    let out = hsm.dir.path().join("exported");
    let read = hsm.tool(&[
        "--read-object",
        "--type",
        "privkey",
        "--label",
        &first,
        "--output-file",
        out.to_str().unwrap(),
    ]);
    assert!(std::fs::read(&out).map(|b| b.is_empty()).unwrap_or(true));
    assert!(
        String::from_utf8_lossy(&read.stderr).contains("not"),
        "{read:?}"
    );
    hsm.assert_private_value_is_sensitive(&first);

    // Every algorithm softhsm2 has: PS256 and EdDSA (and RS256) made on the
    // token too, each signing at once after a rotation without delay.
    let mut kids = vec![first.clone()];
    for alg in ["PS256", "EdDSA", "RS256"] {
        let rotated = rotate(&app, &admin, alg).await;
        assert_eq!(rotated["location"], "pkcs11");
        let kid = s(&rotated["kid"]);
        let token = app.token(&id, &secret).await;
        assert_eq!(segment(&token, 0)["alg"], alg);
        assert_eq!(verified_kid(&app, &token).await, kid);
        let jwk = jwks(&app).await["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .cloned()
            .expect("published");
        assert_eq!(jwk["alg"], alg);
        kids.push(kid);
    }
    let listed = hsm.tool(&["--list-objects", "--type", "privkey"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    for kid in &kids {
        assert!(listed.contains(kid.as_str()), "{kid} on the token");
    }

    // The CLI makes keys in the token too, and a restart finds them there.
    let v = app.cli(&["signing-key", "rotate", "--prepublish", "0"]);
    assert_eq!(v[0]["location"], "pkcs11", "{v}");
    let last = s(&v[0]["kid"]);
    app.restart();
    let token = app.token(&id, &secret).await;
    assert_eq!(verified_kid(&app, &token).await, last);
    assert_eq!(
        app.introspect(&token).await["active"],
        true,
        "introspection verifies the token's key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_cannot_sign_answers_503_never_a_file_key_and_comes_back_by_itself() {
    let Some(hsm) = SoftHsm::or_skip(
        "a_token_that_cannot_sign_answers_503_never_a_file_key_and_comes_back_by_itself",
    ) else {
        return;
    };
    // Files first: the instance makes a key file, which signs. (One
    // issuer across restarts, which bind new ports.)
    let mut app = TestApp::spawn_with(&[("TOLLGATE_ISSUER", "http://tollgate.test")]).await;
    let (id, secret) = app.client("read", &["https://api"]);
    let token = app.token(&id, &secret).await;
    let file_kid = verified_kid(&app, &token).await;
    assert!(app.keys_dir.join(format!("{file_kid}.pem")).exists());

    // Then the token: its first key is made there and signs; the file key
    // stays published (its tokens keep verifying) but never signs again.
    for (k, v) in hsm.env() {
        app.set_env(&k, &v);
    }
    app.restart();
    let after = app.token(&id, &secret).await;
    let hsm_kid = verified_kid(&app, &after).await;
    assert_ne!(hsm_kid, file_kid);
    let published: Vec<String> = app.jwks_kids().await;
    assert!(published.contains(&file_kid) && published.contains(&hsm_kid));
    assert_eq!(app.introspect(&token).await["active"], true);

    // The token goes away: 503 with Retry-After, not ready, counted, and
    // still no signature by the file key, which is right there.
    let away = hsm.dir.path().join("tokens.away");
    std::fs::rename(hsm.tokens(), &away).unwrap();
    for _ in 0..3 {
        let r = app.token_request(&id, &secret, None).await;
        assert_eq!(r.status(), 503);
        assert!(r.headers().get("retry-after").is_some());
        let (_, v) = json(r).await;
        assert_eq!(v["error"], "temporarily_unavailable", "{v}");
    }
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let metrics = app.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tollgate_pkcs11_failures_total{") && !l.ends_with(" 0")),
        "{metrics}"
    );
    // Verification needs no token: introspection still answers.
    assert_eq!(app.introspect(&after).await["active"], true);

    // Back: the instance reconnects by itself and signs with the token key.
    std::fs::rename(&away, hsm.tokens()).unwrap();
    signs_again(&app, &id, &secret, "signing after the token is back").await;
    let token = app.token(&id, &secret).await;
    assert_eq!(verified_kid(&app, &token).await, hsm_kid);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // A wrong PIN: the instance starts, is not ready, and refuses to
    // sign; the right PIN in the file brings it back without a restart.
    std::fs::write(hsm.pin_file(), format!("{WRONG_PIN}\n")).unwrap();
    app.restart();
    let r = app.token_request(&id, &secret, None).await;
    assert_eq!(r.status(), 503);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(app
        .metrics_text()
        .await
        .contains("tollgate_pkcs11_failures_total{reason=\"login\"}"));
    assert!(!app.logs().contains(WRONG_PIN), "the PIN is never logged");
    std::fs::write(hsm.pin_file(), format!("{PIN}\n")).unwrap();
    signs_again(&app, &id, &secret, "signing after the PIN is fixed").await;
    assert!(!app.logs().contains(PIN), "the PIN is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_one_token_directory_signs_with_the_same_keys() {
    let Some(url) = pg_or_skip("a_fleet_on_one_token_directory_signs_with_the_same_keys") else {
        return;
    };
    let Some(hsm) = SoftHsm::or_skip("a_fleet_on_one_token_directory_signs_with_the_same_keys")
    else {
        return;
    };
    let env = hsm.env();
    let fleet = TestApp::fleet(&url, 2, &pairs(&env)).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let (id, secret) = a.client("read", &["https://api"]);
    let ta = a.token(&id, &secret).await;
    let tb = b.token(&id, &secret).await;
    let kid = verified_kid(a, &ta).await;
    assert_eq!(verified_kid(b, &tb).await, kid, "one key for the fleet");
    let admin = a.admin_token().await;
    let keys = signing_keys(a, &admin).await;
    assert_eq!(keys.len(), 1, "the second instance made no key: {keys:?}");

    // A rotation through one instance: the other signs with the new key,
    // which it finds on the token, within a second.
    let rotated = s(&rotate(a, &admin, "ES256").await["kid"]);
    eventually(
        "the other instance signs with the rotated key",
        Duration::from_secs(1),
        || {
            let (id, secret, rotated) = (&id, &secret, &rotated);
            async move {
                let t = b.token(id, secret).await;
                s(&segment(&t, 0)["kid"]) == *rotated
            }
        },
    )
    .await;
    let t = b.token(&id, &secret).await;
    assert_eq!(verified_kid(a, &t).await, rotated);
    assert_eq!(a.introspect(&t).await["active"], true);
    assert_eq!(b.introspect(&ta).await["active"], true);
}
