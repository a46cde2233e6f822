//! Fuzzes token verification as introspection runs it: bearer-header parsing,
//! JWT header decoding, key lookup and signature checks against a real key set.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tollgate::service::introspect::bearer_token;
use tollgate::store::SigningKeyRecord;
use tollgate::token::keys::{generate_pem, load_pem};
use tollgate::token::{verify, Alg, KeySet};

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut loaded = HashMap::new();
        let mut records = Vec::new();
        for alg in [Alg::Es256, Alg::EdDsa] {
            let key = load_pem(&generate_pem(alg).expect("key")).expect("load");
            records.push(SigningKeyRecord::new(&key.kid, alg.as_str(), 0, 0));
            loaded.insert(key.kid.clone(), Arc::new(key));
        }
        KeySet::new(&records, &loaded, 86_400)
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = bearer_token(Some(data));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = verify(text, keys(), "https://tollgate.test", 1_800_000_000);
    }
});
