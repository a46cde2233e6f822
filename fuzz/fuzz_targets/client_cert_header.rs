//! Fuzzes the RFC 9440 `Client-Cert` header and certificate reading: the
//! structured-field byte sequence, the X.509 parse, the subject DN decoded
//! for every string type, and a match against a registered RFC 4514 name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::oauth::mtls::{from_header, parse_dn, Certificate, RegisteredName};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_dn(text);
        if let Some(der) = from_header(text) {
            let _ = Certificate::parse(&[der]);
        }
    }
    if let Ok(cert) = Certificate::parse(&[data.to_vec()]) {
        let _ = cert.holds(&RegisteredName::SubjectDn("CN=payments,O=Acme".into()));
        let _ = cert.thumbprint();
    }
});
