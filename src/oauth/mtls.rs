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

/// A client certificate presented in the TLS handshake or by a trusted proxy,
/// with what the checks read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The end-entity certificate (DER).
    pub der: Vec<u8>,
    /// Intermediate certificates that came with it (DER).
    pub intermediates: Vec<Vec<u8>>,
    /// The subject DN (most specific RDN first); `None` when a value of it
    /// cannot be decoded exactly.
    pub subject_dn: Option<Dn>,
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

pub use crate::domain::RegisteredName;

/// Checks a registered name's form: 1 to 512 printable characters, an IP
/// address for `san_ip`.
pub fn check_registered(name: &RegisteredName) -> Result<(), String> {
    let (field, v) = name.field();
    if v.is_empty() || v.len() > 512 || v.chars().any(char::is_control) {
        return Err(format!("{field} must be 1 to 512 printable characters"));
    }
    if let RegisteredName::Ip(ip) = name {
        ip.parse::<IpAddr>()
            .map_err(|_| format!("{field} must be an IP address"))?;
    }
    if let RegisteredName::SubjectDn(dn) = name {
        parse_dn(dn).ok_or_else(|| format!("{field} must be an RFC 4514 distinguished name"))?;
    }
    Ok(())
}

/// A distinguished name compared as structure, not text: its RDNs most
/// specific first (the order of an RFC 4514 string), each RDN's attributes
/// sorted, each attribute's type in a canonical short form (`CN`, `O`, …, or
/// its dotted OID) and its value decoded (no escapes).
pub type Dn = Vec<Vec<(String, String)>>;

/// The canonical form of an attribute type: the short names of RFC 4514 §3
/// and of x509-parser's registry, upper case; long names mapped to them.
fn canonical_type(t: &str) -> String {
    let upper = t.trim().to_ascii_uppercase();
    let short = match upper.as_str() {
        "COMMONNAME" | "2.5.4.3" => "CN",
        "ORGANIZATIONNAME" | "2.5.4.10" => "O",
        "ORGANIZATIONALUNITNAME" | "2.5.4.11" => "OU",
        "COUNTRYNAME" | "2.5.4.6" => "C",
        "LOCALITYNAME" | "2.5.4.7" => "L",
        "STATEORPROVINCENAME" | "2.5.4.8" => "ST",
        "STREETADDRESS" | "2.5.4.9" => "STREET",
        "DOMAINCOMPONENT" | "0.9.2342.19200300.100.1.25" => "DC",
        "USERID" | "0.9.2342.19200300.100.1.1" => "UID",
        "EMAILADDRESS" | "1.2.840.113549.1.9.1" => "E",
        "SERIALNUMBER" | "2.5.4.5" => "SERIALNUMBER",
        other => other,
    };
    short.to_string()
}

/// Parses a registered DN (RFC 4514 §3, escapes included, with the
/// `ldapdn` parser); `None` when it is not one.
pub fn parse_dn(dn: &str) -> Option<Dn> {
    let mut out = Vec::new();
    for rdn in ldapdn::parse::dn_from_str(dn) {
        let mut atvs = Vec::new();
        for atv in rdn.ok()? {
            let (t, v) = atv.ok()?;
            // A value in its BER form (`#…`, §2.4) is not compared as text.
            if t.is_empty() || v.starts_with('#') {
                return None;
            }
            let v = ldapdn::escape::unescape_ldap_value_string_cow(v).ok()?;
            atvs.push((canonical_type(t), v.into_owned()));
        }
        atvs.sort();
        out.push(atvs);
    }
    (!out.is_empty()).then_some(out)
}

/// The value of an attribute as text, whatever its ASN.1 string type:
/// UTF8String, PrintableString, IA5String, VisibleString, NumericString,
/// TeletexString (read as Latin-1, as CAs use it), BMPString (UTF-16BE) and
/// UniversalString (UTF-32BE). `None` for anything else or a value that
/// does not decode: such a name is never compared.
fn attribute_text(atv: &AttributeTypeAndValue<'_>) -> Option<String> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let any = atv.attr_value();
    let data = any.data;
    let text = match any.tag() {
        Tag::Utf8String => std::str::from_utf8(data).ok()?.to_string(),
        Tag::PrintableString | Tag::Ia5String | Tag::VisibleString | Tag::NumericString => {
            if !data.is_ascii() {
                return None;
            }
            std::str::from_utf8(data).ok()?.to_string()
        }
        Tag::TeletexString => data.iter().map(|b| char::from(*b)).collect(),
        Tag::BmpString => {
            if data.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()?
        }
        Tag::UniversalString => {
            if data.len() % 4 != 0 {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect::<Option<String>>()?
        }
        _ => return None,
    };
    Some(text)
}

/// A certificate's subject as a [`Dn`]; `None` when any value cannot be
/// rendered exactly (such a certificate matches no registered DN, rather
/// than matching one with an empty value).
fn certificate_dn(name: &X509Name<'_>) -> Option<Dn> {
    let mut out = Vec::new();
    for rdn in name.iter_rdn() {
        let mut atvs = Vec::new();
        for atv in rdn.iter() {
            let oid = atv.attr_type();
            let key = oid2abbrev(oid, oid_registry())
                .map(canonical_type)
                .unwrap_or_else(|_| oid.to_id_string());
            atvs.push((canonical_type(&key), attribute_text(atv)?));
        }
        atvs.sort();
        out.push(atvs);
    }
    // The certificate lists RDNs from the root; a DN string, most specific first.
    out.reverse();
    Some(out)
}

impl Certificate {
    /// Reads a DER certificate (with intermediates, end entity first).
    pub fn parse(chain: &[Vec<u8>]) -> Result<Certificate, String> {
        let der = chain.first().ok_or("no certificate")?;
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| "not an X.509 certificate")?;
        let mut c = Certificate {
            der: der.clone(),
            intermediates: chain[1..].to_vec(),
            subject_dn: certificate_dn(cert.subject()),
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
            RegisteredName::SubjectDn(dn) => self
                .subject_dn
                .as_ref()
                .is_some_and(|mine| parse_dn(dn).as_ref() == Some(mine)),
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
    fn registered_distinguished_names_parse_with_their_escapes() {
        let pair = |t: &str, v: &str| vec![(t.to_string(), v.to_string())];
        assert_eq!(
            parse_dn("CN=a, O=Acme ,C=DE"),
            Some(vec![pair("CN", "a"), pair("O", "Acme"), pair("C", "DE")])
        );
        // Issue 23 (N5): an escaped comma is part of the value, spaces kept.
        assert_eq!(
            parse_dn("CN=Acme\\, Inc,O=Acme"),
            Some(vec![pair("CN", "Acme, Inc"), pair("O", "Acme")])
        );
        assert_ne!(
            parse_dn("CN=Acme\\, Inc,O=Acme"),
            parse_dn("CN=Acme\\,Inc,O=Acme")
        );
        assert_eq!(parse_dn("commonName=x,o=y"), parse_dn("CN=x,O=y"));
        assert_eq!(parse_dn("CN=x+OU=b,O=y"), parse_dn("OU=b+CN=x,O=y"));
        assert_eq!(parse_dn("CN=\\41b"), Some(vec![pair("CN", "Ab")]));
        for bad in ["", "CN", "=x", "CN=x,,O=y", "CN=#04024869", "CN=x\\"] {
            assert_eq!(parse_dn(bad), None, "{bad:?}");
        }
        assert_eq!(from_header(":AQID:"), Some(vec![1, 2, 3]));
        assert_eq!(from_header("AQID"), None);
        assert!(check_registered(&RegisteredName::Ip("10.0.0.1".into())).is_ok());
        assert!(check_registered(&RegisteredName::Ip("ten".into())).is_err());
        assert!(check_registered(&RegisteredName::Dns("".into())).is_err());
    }

    /// A self-signed certificate `O=Acme, CN=<cn>` with the CN as given.
    fn cert_with_cn(cn: rcgen::DnValue) -> Certificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        Certificate::parse(&[cert.der().to_vec()]).unwrap()
    }

    #[test]
    fn every_string_type_of_a_certificate_dn_decodes_or_matches_nothing() {
        use rcgen::string::{BmpString, TeletexString, UniversalString};
        use rcgen::DnValue;
        let dn = |s: &str| RegisteredName::SubjectDn(s.into());
        // Issue 23 (N4): a BMPString CN is `payments`, not "".
        let bmp = cert_with_cn(DnValue::BmpString(BmpString::try_from("payments").unwrap()));
        assert!(bmp.holds(&dn("O=Acme,CN=payments")));
        assert!(!bmp.holds(&dn("O=Acme,CN=")));
        let uni = cert_with_cn(DnValue::UniversalString(
            UniversalString::try_from("other").unwrap(),
        ));
        assert!(uni.holds(&dn("O=Acme,CN=other")));
        assert!(!uni.holds(&dn("O=Acme,CN=")));
        let t61 = cert_with_cn(DnValue::TeletexString(
            TeletexString::try_from("legacy").unwrap(),
        ));
        assert!(t61.holds(&dn("O=Acme,CN=legacy")));
        // Issue 23 (N5): escaped commas and inner spaces.
        let comma = cert_with_cn(DnValue::Utf8String("Acme, Inc".into()));
        assert!(comma.holds(&dn("O=Acme,CN=Acme\\, Inc")));
        assert!(comma.holds(&dn("O = Acme , CN = Acme\\, Inc")));
        let squeezed = cert_with_cn(DnValue::Utf8String("Acme,Inc".into()));
        assert!(!squeezed.holds(&dn("O=Acme,CN=Acme\\, Inc")));
        assert!(squeezed.holds(&dn("O=Acme,CN=Acme\\,Inc")));
        // Order matters; case of values matters; case of types does not.
        assert!(!comma.holds(&dn("CN=Acme\\, Inc,O=Acme")));
        assert!(!bmp.holds(&dn("O=Acme,CN=Payments")));
        assert!(bmp.holds(&dn("o=Acme,cn=payments")));
    }

    #[test]
    fn a_dn_value_that_cannot_be_rendered_matches_nothing() {
        // A BMPString of odd length is not UTF-16.
        let name = x509_parser::der_parser::asn1_rs::Any::new(
            x509_parser::der_parser::asn1_rs::Header::new(
                x509_parser::der_parser::asn1_rs::Class::Universal,
                false,
                x509_parser::der_parser::asn1_rs::Tag::BmpString,
                x509_parser::der_parser::asn1_rs::Length::Definite(3),
            ),
            &[0, 0x41, 0],
        );
        let atv = AttributeTypeAndValue::new(x509_parser::oid_registry::OID_X509_COMMON_NAME, name);
        assert_eq!(attribute_text(&atv), None);
    }
}
