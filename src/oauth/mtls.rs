//! Mutual-TLS client authentication and certificate-bound tokens (RFC 8705)
//! as pure functions: a client certificate's names (subject DN as an RFC 4514
//! string, SANs), the match against a client's registered name (§2.1.2), the
//! match of a self-signed certificate's key against the client's JWK Set
//! (§2.2), the chain to the configured CA (§2.1), and the `x5t#S256`
//! thumbprint a bound token carries (§3.1).

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use x509_parser::prelude::*;

use crate::domain::Client;

/// A client certificate presented in the TLS handshake or by a trusted proxy,
/// with what the checks read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The end-entity certificate (DER).
    pub der: Vec<u8>,
    /// Intermediate certificates that came with it (DER).
    pub intermediates: Vec<Vec<u8>>,
    /// The subject DN, RFC 4514 string (most specific RDN first).
    pub subject_dn: String,
    /// dNSName SANs.
    pub san_dns: Vec<String>,
    /// uniformResourceIdentifier SANs.
    pub san_uri: Vec<String>,
    /// iPAddress SANs.
    pub san_ip: Vec<IpAddr>,
    /// rfc822Name SANs.
    pub san_email: Vec<String>,
    /// The SubjectPublicKeyInfo's algorithm OID and key bits.
    key_alg: String,
    key_bits: Vec<u8>,
}

/// One registered name of a `tls_client_auth` client (RFC 8705 §2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisteredName {
    /// `tls_client_auth_subject_dn`.
    SubjectDn(String),
    /// `tls_client_auth_san_dns`.
    Dns(String),
    /// `tls_client_auth_san_uri`.
    Uri(String),
    /// `tls_client_auth_san_ip`.
    Ip(String),
    /// `tls_client_auth_san_email`.
    Email(String),
}

/// The names a client registered (a valid `tls_client_auth` client has one).
pub fn registered_names(c: &Client) -> Vec<RegisteredName> {
    let mut out = Vec::new();
    if let Some(v) = &c.tls_client_auth_subject_dn {
        out.push(RegisteredName::SubjectDn(v.clone()));
    }
    if let Some(v) = &c.tls_client_auth_san_dns {
        out.push(RegisteredName::Dns(v.clone()));
    }
    if let Some(v) = &c.tls_client_auth_san_uri {
        out.push(RegisteredName::Uri(v.clone()));
    }
    if let Some(v) = &c.tls_client_auth_san_ip {
        out.push(RegisteredName::Ip(v.clone()));
    }
    if let Some(v) = &c.tls_client_auth_san_email {
        out.push(RegisteredName::Email(v.clone()));
    }
    out
}

/// Checks a registered name's form: 1 to 512 printable characters, an IP
/// address for `san_ip`.
pub fn check_registered(name: &RegisteredName) -> Result<(), String> {
    let (field, v) = match name {
        RegisteredName::SubjectDn(v) => ("tls_client_auth_subject_dn", v),
        RegisteredName::Dns(v) => ("tls_client_auth_san_dns", v),
        RegisteredName::Uri(v) => ("tls_client_auth_san_uri", v),
        RegisteredName::Ip(v) => ("tls_client_auth_san_ip", v),
        RegisteredName::Email(v) => ("tls_client_auth_san_email", v),
    };
    if v.is_empty() || v.len() > 512 || v.chars().any(char::is_control) {
        return Err(format!("{field} must be 1 to 512 printable characters"));
    }
    if let RegisteredName::Ip(ip) = name {
        ip.parse::<IpAddr>()
            .map_err(|_| format!("{field} must be an IP address"))?;
    }
    Ok(())
}

/// RFC 4514 §2.4 escaping of an attribute value.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, ch) in v.chars().enumerate() {
        let special = matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (ch == '#' || ch == ' '))
            || (i + 1 == v.chars().count() && ch == ' ');
        if special {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// A DN as an RFC 4514 string: RDNs most specific first, `,` between them,
/// `+` within one, short names (CN, O, OU, C, L, ST, DC, …) where known.
fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type();
                    let key = oid2abbrev(oid, oid_registry())
                        .map(|s| match s {
                            "emailAddress" => "E".to_string(),
                            other => other.to_string(),
                        })
                        .unwrap_or_else(|_| oid.to_id_string());
                    let value = atv.as_str().unwrap_or_default();
                    format!("{key}={}", escape(value))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// A registered DN in the same form: spaces around separators removed.
fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            rdn.split('+')
                .map(|atv| match atv.split_once('=') {
                    Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
                    None => atv.trim().to_string(),
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Certificate {
    /// Reads a DER certificate (with intermediates, end entity first).
    pub fn parse(chain: &[Vec<u8>]) -> Result<Certificate, String> {
        let der = chain.first().ok_or("no certificate")?;
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| "not an X.509 certificate")?;
        let mut c = Certificate {
            der: der.clone(),
            intermediates: chain[1..].to_vec(),
            subject_dn: rfc4514(cert.subject()),
            san_dns: Vec::new(),
            san_uri: Vec::new(),
            san_ip: Vec::new(),
            san_email: Vec::new(),
            key_alg: cert.public_key().algorithm.algorithm.to_id_string(),
            key_bits: cert.public_key().subject_public_key.data.to_vec(),
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => c.san_dns.push(d.to_string()),
                    GeneralName::URI(u) => c.san_uri.push(u.to_string()),
                    GeneralName::RFC822Name(e) => c.san_email.push(e.to_string()),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => c
                            .san_ip
                            .push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                        16 => c
                            .san_ip
                            .push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        Ok(c)
    }

    /// RFC 8705 §3.1: `x5t#S256`, the base64url SHA-256 of the DER.
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.der)
    }

    /// RFC 8705 §2.1.2: whether the certificate holds the registered name
    /// (DNs compared as RFC 4514 strings, case-sensitive values; DNS names
    /// and email addresses case-insensitively; URIs exactly; IPs as
    /// addresses).
    pub fn holds(&self, name: &RegisteredName) -> bool {
        match name {
            RegisteredName::SubjectDn(dn) => normalize_dn(dn) == self.subject_dn,
            RegisteredName::Dns(d) => self.san_dns.iter().any(|x| x.eq_ignore_ascii_case(d)),
            RegisteredName::Uri(u) => self.san_uri.iter().any(|x| x == u),
            RegisteredName::Ip(ip) => ip
                .parse::<IpAddr>()
                .is_ok_and(|ip| self.san_ip.contains(&ip)),
            RegisteredName::Email(e) => self.san_email.iter().any(|x| x.eq_ignore_ascii_case(e)),
        }
    }

    /// RFC 8705 §2.2: whether the certificate's public key is one of `keys`.
    pub fn key_in(&self, keys: &JwkSet) -> bool {
        keys.keys.iter().any(|k| match &k.algorithm {
            AlgorithmParameters::EllipticCurve(ec) if self.key_alg == "1.2.840.10045.2.1" => {
                let (Ok(x), Ok(y)) = (B64.decode(&ec.x), B64.decode(&ec.y)) else {
                    return false;
                };
                let mut point = vec![4u8];
                point.extend(x);
                point.extend(y);
                point == self.key_bits
            }
            AlgorithmParameters::OctetKeyPair(okp) if self.key_alg == "1.3.101.112" => {
                B64.decode(&okp.x).is_ok_and(|x| x == self.key_bits)
            }
            AlgorithmParameters::RSA(rsa) if self.key_alg == "1.2.840.113549.1.1.1" => {
                let Ok((_, key)) = x509_parser::public_key::RSAPublicKey::from_der(&self.key_bits)
                else {
                    return false;
                };
                let strip = |b: &[u8]| {
                    b.iter()
                        .skip_while(|x| **x == 0)
                        .copied()
                        .collect::<Vec<u8>>()
                };
                let (Ok(n), Ok(e)) = (B64.decode(&rsa.n), B64.decode(&rsa.e)) else {
                    return false;
                };
                strip(&n) == strip(key.modulus) && strip(&e) == strip(key.exponent)
            }
            _ => false,
        })
    }

    /// RFC 8705 §2.1: whether the certificate chains to one of `roots` for
    /// client authentication, valid at `now`.
    pub fn chains_to(&self, roots: &[rustls::pki_types::TrustAnchor<'_>], now: i64) -> bool {
        let der = rustls::pki_types::CertificateDer::from(self.der.as_slice());
        let Ok(ee) = webpki::EndEntityCert::try_from(&der) else {
            return false;
        };
        let intermediates: Vec<rustls::pki_types::CertificateDer<'_>> = self
            .intermediates
            .iter()
            .map(|c| rustls::pki_types::CertificateDer::from(c.as_slice()))
            .collect();
        let time = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            now.max(0) as u64,
        ));
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            roots,
            &intermediates,
            time,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .is_ok()
    }
}

/// RFC 8705 §3.1: the base64url SHA-256 of a DER certificate.
pub fn thumbprint(der: &[u8]) -> String {
    B64.encode(ring::digest::digest(&ring::digest::SHA256, der))
}

/// The DER certificate of an RFC 9440 `Client-Cert` header: a structured
/// field byte sequence, `:base64:`.
pub fn from_header(value: &str) -> Option<Vec<u8>> {
    let inner = value.trim().strip_prefix(':')?.strip_suffix(':')?;
    base64::engine::general_purpose::STANDARD.decode(inner).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinguished_names_are_rfc_4514_strings_and_registered_ones_normalize() {
        assert_eq!(normalize_dn("CN=a, O=Acme ,C=DE"), "CN=a,O=Acme,C=DE");
        assert_eq!(escape("a,b"), "a\\,b");
        assert_eq!(escape(" x "), "\\ x\\ ");
        assert_eq!(from_header(":AQID:"), Some(vec![1, 2, 3]));
        assert_eq!(from_header("AQID"), None);
        assert!(check_registered(&RegisteredName::Ip("10.0.0.1".into())).is_ok());
        assert!(check_registered(&RegisteredName::Ip("ten".into())).is_err());
        assert!(check_registered(&RegisteredName::Dns("".into())).is_err());
    }
}
