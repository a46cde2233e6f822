//! Fuzzes client-credential parsing: the Basic header (with RFC 6749 §2.3.1
//! form-decoding) and its combination with body credentials.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::oauth::credentials::{extract, parse_basic};
use tollgate::oauth::Params;

fuzz_target!(|data: &[u8]| {
    let _ = parse_basic(data);
    let body = Params::from_pairs([("client_id", "tgc_x"), ("client_secret", "tgs_y")]);
    let _ = extract(Some(data), &body);
    let _ = extract(Some(data), &Params::default());
});
