//! Property tests over request parsing: no input panics, and what a client
//! encodes is what the server decodes.

use proptest::prelude::*;

use super::credentials::{extract, parse_basic};
use super::grant::{check_grant_type, TokenRequest};
use super::params::{body_kind, Params};

fn form_encode(pairs: &[(String, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512), header in proptest::collection::vec(any::<u8>(), 0..256)) {
        for p in [Params::from_form(&body), Params::from_json(&body)].into_iter().flatten() {
            let _ = check_grant_type(&p);
            let _ = TokenRequest::from_params(&p);
            let _ = extract(Some(&header), &p);
        }
        let _ = parse_basic(&header);
        let _ = body_kind(std::str::from_utf8(&header).ok(), body.len());
    }

    #[test]
    fn form_round_trips(pairs in proptest::collection::btree_map("[a-z_]{1,12}", "\\PC{0,40}", 0..10)) {
        let pairs: Vec<(String, String)> = pairs.into_iter().collect();
        let p = Params::from_form(form_encode(&pairs).as_bytes()).unwrap();
        for (k, v) in &pairs {
            let expect = if v.is_empty() { None } else { Some(v.as_str()) };
            prop_assert_eq!(p.single(k).unwrap(), expect);
        }
    }

    #[test]
    fn json_and_form_agree(pairs in proptest::collection::btree_map("[a-z_]{1,12}", "\\PC{0,40}", 0..10)) {
        let pairs: Vec<(String, String)> = pairs.into_iter().collect();
        let json = serde_json::Value::Object(pairs.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect());
        let a = Params::from_form(form_encode(&pairs).as_bytes()).unwrap();
        let b = Params::from_json(json.to_string().as_bytes()).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn repeated_names_are_always_refused(name in "[a-z_]{1,12}", a in "[a-z]{1,8}", b in "[a-z]{1,8}") {
        let body = format!("{name}={a}&{name}={b}");
        let p = Params::from_form(body.as_bytes()).unwrap();
        prop_assert!(p.single(&name).is_err());
    }

    #[test]
    fn basic_credentials_round_trip(id in "\\PC{1,30}", secret in "\\PC{0,60}") {
        use base64::Engine;
        let enc = |s: &str| serde_urlencoded::to_string([("", s)]).unwrap()[1..].to_string();
        let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(&id), enc(&secret))));
        let (got_id, got_secret) = parse_basic(header.as_bytes()).unwrap().unwrap();
        prop_assert_eq!(got_id, id);
        prop_assert_eq!(got_secret.expose(), secret.as_str());
    }
}
