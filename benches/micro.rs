//! Micro-benchmarks of the hot functions, so that a regression can be found
//! in one function: signing, verification, secret digesting, request parsing.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate::oauth::credentials::extract;
use tollgate::oauth::grant::TokenRequest;
use tollgate::oauth::Params;
use tollgate::secret::SecretString;
use tollgate::store::SigningKeyRecord;
use tollgate::token::keys::{generate_pem, load_pem};
use tollgate::token::{sign, verify, Alg, Audience, Claims, KeySet};

fn claims() -> Claims {
    Claims {
        iss: "https://tollgate.bench".into(),
        sub: "tgc_QkB-p0SYo_3cHyFWB_osqA".into(),
        aud: Audience::One("https://api.bench".into()),
        exp: 4_000_000_000,
        iat: 1_800_000_000,
        jti: "vn3_ACDThStAozxFgMoGYg".into(),
        client_id: "tgc_QkB-p0SYo_3cHyFWB_osqA".into(),
        scope: "read write".into(),
        api_key_id: None,
        cnf: None,
        act: None,
        may_act: None,
        origin: Vec::new(),
        extra: serde_json::Map::new(),
    }
}

fn keyset(alg: Alg) -> (KeySet, String) {
    let pem = generate_pem(alg).unwrap();
    let key = load_pem(&pem).unwrap();
    let record = SigningKeyRecord::new(&key.kid, alg.as_str(), 0, 0);
    let mut m = HashMap::new();
    m.insert(key.kid.clone(), Arc::new(key));
    (KeySet::new(&[record], &m, 86_400), pem)
}

fn signing(c: &mut Criterion) {
    for alg in [Alg::Es256, Alg::EdDsa, Alg::Rs256] {
        let (set, pem) = keyset(alg);
        let key = set.signer(1).unwrap().clone();
        let cl = claims();
        c.bench_function(&format!("sign {} (held key)", alg.as_str()), |b| {
            b.iter(|| sign(black_box(&cl), &key).unwrap())
        });
        if alg == Alg::Es256 {
            // What jsonwebtoken::encode costs: it re-parses the PKCS#8 key per call.
            let enc = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            h.typ = Some("at+jwt".into());
            c.bench_function("sign ES256 (jsonwebtoken::encode)", |b| {
                b.iter(|| jsonwebtoken::encode(&h, black_box(&cl), &enc).unwrap())
            });
        }
        let token = sign(&cl, &key).unwrap();
        c.bench_function(&format!("verify {}", alg.as_str()), |b| {
            b.iter(|| {
                verify(
                    black_box(&token),
                    &set,
                    "https://tollgate.bench",
                    1_900_000_000,
                )
                .unwrap()
            })
        });
    }
}

fn digesting(c: &mut Criterion) {
    let secret = SecretString::new("tgs_P_v8HLW2AgnxC7ZRb_8A5GSb4fHvLa9Q4lqKtsXAoco".into());
    c.bench_function("secret digest (SHA-256)", |b| {
        b.iter(|| black_box(&secret).digest())
    });
}

fn parsing(c: &mut Criterion) {
    let form = b"grant_type=client_credentials&scope=read+write&resource=https%3A%2F%2Fapi.bench";
    let json = br#"{"audience":"https://api.bench","grant_type":"client_credentials","client_id":"tgc_QkB-p0SYo_3cHyFWB_osqA","client_secret":"tgs_P_v8HLW2AgnxC7ZRb_8A5GSb4fHvLa9Q4lqKtsXAoco"}"#;
    let basic = b"Basic dGdjX1FrQi1wMFNZb18zY0h5RldCX29zcUE6dGdzX1BfdjhITFcyQWdueEM3WlJiXzhBNUdTYjRmSHZMYTlRNGxxS3RzWEFvY28=";
    c.bench_function("parse form token request", |b| {
        b.iter(|| {
            let p = Params::from_form(black_box(form)).unwrap();
            let creds = extract(Some(basic), &p).unwrap();
            (TokenRequest::from_params(&p).unwrap(), creds)
        })
    });
    c.bench_function("parse JSON token request", |b| {
        b.iter(|| {
            let p = Params::from_json(black_box(json)).unwrap();
            let creds = extract(None, &p).unwrap();
            (TokenRequest::from_params(&p).unwrap(), creds)
        })
    });
}

criterion_group!(benches, signing, digesting, parsing);
criterion_main!(benches);
