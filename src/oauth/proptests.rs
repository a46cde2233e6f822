//! Property tests over request parsing: no input panics, and what a client
//! encodes is what the server decodes.

use proptest::prelude::*;

use super::credentials::{extract, parse_basic};
use super::grant::{check_grant_type, TokenRequest};
use super::params::{body_kind, Params};

fn form_encode(pairs: &[(String, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

/// Bodies made of the pieces a form parser treats specially: names and
/// values, `=`, `&`, `+`, whole and broken escapes (some of them halves of
/// multi-byte characters), and any other character.
fn form_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z]{1,3}",
        Just("=".to_string()),
        Just("&".to_string()),
        Just("+".to_string()),
        "%[0-9A-Fa-f]{2}",
        "%[C-F][0-9A-F]%[89AB][0-9A-F]",
        "%[0-9A-Fa-f]?",
        "\\PC",
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|p| p.concat())
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
    fn the_form_reads_as_the_whatwg_parser_does(body in form_like()) {
        // Where the body decodes to UTF-8, the pairs are the standard
        // parser's (form_urlencoded, which serde_urlencoded wraps); where it
        // does not, the standard parser would have put U+FFFD in, and the
        // body is refused instead.
        prop_assume!(!body.contains('\u{FFFD}'));
        let ours = Params::from_form(body.as_bytes());
        let mut theirs = Params::default();
        let mut lossy = false;
        let mut refused = false;
        for (k, v) in form_urlencoded::parse(body.as_bytes()) {
            lossy |= k.contains('\u{FFFD}') || v.contains('\u{FFFD}');
            refused |= theirs.push(k.into_owned(), v.into_owned()).is_err();
        }
        if lossy || refused {
            prop_assert!(ours.is_err());
        } else {
            prop_assert_eq!(ours.unwrap(), theirs);
        }
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
