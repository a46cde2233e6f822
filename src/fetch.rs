//! Outbound fetches of public JSON documents (a client's `jwks_uri`), made
//! safe to point at from the outside: `https` to public addresses only
//! (loopback, private, link-local and other special ranges refused, checked
//! on the resolved address, which the connection is then pinned to, so a DNS
//! answer cannot change between the check and the connect), no redirects,
//! a 2 s timeout and a 64 KiB cap. A setting allows local addresses and
//! plain `http` for tests and labs.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How long a fetch may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Largest document read.
pub const MAX_BYTES: usize = 64 * 1024;

/// Why a fetch was refused or failed. Its text names no secret (the URL is
/// the client's public key location) and is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL is not one Tollgate fetches (scheme, host, address).
    #[error("not fetched: {0}")]
    NotAllowed(String),
    /// The fetch did not succeed (timeout, status, not JSON, too large).
    #[error("fetch failed: {0}")]
    Failed(String),
}

/// Checks a URL's form before it is stored: `https` (or `http` when local
/// addresses are allowed), a host, no user info, at most 2048 bytes.
pub fn check_url(url: &str, allow_local: bool) -> Result<reqwest::Url, FetchError> {
    let no = |m: &str| Err(FetchError::NotAllowed(m.to_string()));
    if url.len() > 2048 {
        return no("the URL is longer than 2048 bytes");
    }
    let Ok(u) = reqwest::Url::parse(url) else {
        return no("not an absolute URL");
    };
    match u.scheme() {
        "https" => {}
        "http" if allow_local => {}
        _ => return no("the URL must use https"),
    }
    if u.host_str().is_none_or(str::is_empty) {
        return no("the URL has no host");
    }
    if !u.username().is_empty() || u.password().is_some() {
        return no("the URL must not carry user info");
    }
    if u.fragment().is_some() {
        return no("the URL must not have a fragment");
    }
    Ok(u)
}

/// Whether `ip` is a public unicast address (not loopback, private,
/// link-local, shared, documentation, multicast, unspecified or reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // shared, RFC 6598
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF, RFC 6890
                || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let v4 = |hi: u16, lo: u16| {
                std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            // IPv4 embedded in an interface id: ISATAP (RFC 5214) and the
            // IPv4-translated form (RFC 2765, ::ffff:0:a.b.c.d).
            let isatap = (s[4] | 0x0200) == 0x0200 && s[5] == 0x5efe;
            let translated = s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0;
            if (isatap || translated) && !is_public(IpAddr::V4(v4(s[6], s[7]))) {
                return false;
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || s[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible, ::/96 (RFC 4291 §2.5.5.1)
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local, deprecated (RFC 3879)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2001 && s[1] == 0) // Teredo: embeds any IPv4 (RFC 4380)
                || s[0] == 0x2002 // 6to4: embeds any IPv4 (RFC 3056)
                || (s[0] == 0x64 && s[1] == 0xff9b)) // NAT64, well-known and local-use (RFC 6052, 8215)
        }
    }
}

/// Fetches JSON documents under the rules above.
#[derive(Debug, Clone)]
pub struct Fetcher {
    allow_local: bool,
}

impl Fetcher {
    /// A fetcher; `allow_local` lifts the address and scheme rules.
    pub fn new(allow_local: bool) -> Fetcher {
        Fetcher { allow_local }
    }

    /// Fetches `url` and parses it as JSON.
    pub async fn json(&self, url: &str) -> Result<serde_json::Value, FetchError> {
        self.json_with_max_age(url).await.map(|(v, _)| v)
    }

    /// Fetches `url` and parses it as JSON, with the `max-age` of its
    /// `Cache-Control` (RFC 9111 §5.2.2.1; `no-store` and `no-cache` are 0).
    pub async fn json_with_max_age(
        &self,
        url: &str,
    ) -> Result<(serde_json::Value, Option<u64>), FetchError> {
        let (http, u) = self.pinned(url).await?;
        let fetch = async {
            let mut resp = http
                .get(u)
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| FetchError::Failed(format!("request: {e}")))?;
            if !resp.status().is_success() {
                return Err(FetchError::Failed(format!("status {}", resp.status())));
            }
            let max_age = resp
                .headers()
                .get(reqwest::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .and_then(max_age);
            if resp.content_length().is_some_and(|n| n > MAX_BYTES as u64) {
                return Err(FetchError::Failed(format!("larger than {MAX_BYTES} bytes")));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| FetchError::Failed(format!("body: {e}")))?
            {
                if body.len() + chunk.len() > MAX_BYTES {
                    return Err(FetchError::Failed(format!("larger than {MAX_BYTES} bytes")));
                }
                body.extend_from_slice(&chunk);
            }
            serde_json::from_slice(&body)
                .map(|v| (v, max_age))
                .map_err(|_| FetchError::Failed("not JSON".into()))
        };
        tokio::time::timeout(TIMEOUT, fetch)
            .await
            .map_err(|_| FetchError::Failed("timed out".into()))?
    }
}

impl Fetcher {
    /// A client pinned to the address `url`'s host resolves to, once the
    /// address rules allowed it (no redirects, the timeouts above).
    async fn pinned(&self, url: &str) -> Result<(reqwest::Client, reqwest::Url), FetchError> {
        let u = check_url(url, self.allow_local)?;
        let host = u.host_str().unwrap_or_default().to_string();
        let port = u.port_or_known_default().unwrap_or(443);
        let lookup_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let addrs: Vec<SocketAddr> = tokio::time::timeout(
            TIMEOUT,
            tokio::net::lookup_host((lookup_host.as_str(), port)),
        )
        .await
        .map_err(|_| FetchError::Failed("name resolution timed out".into()))?
        .map_err(|e| FetchError::Failed(format!("cannot resolve {host}: {e}")))?
        .collect();
        let Some(addr) = addrs.first().copied() else {
            return Err(FetchError::Failed(format!("{host} has no address")));
        };
        if !self.allow_local {
            if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(FetchError::NotAllowed(format!(
                    "{host} resolves to {}, which is not a public address",
                    bad.ip()
                )));
            }
        }
        // Pinned to the address just checked.
        let http = reqwest::Client::builder()
            .resolve(&lookup_host, addr)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()
            .map_err(|e| FetchError::Failed(format!("client: {e}")))?;
        Ok((http, u))
    }

    /// RFC 8935 §2: POSTs a Security Event Token to a receiver's push
    /// endpoint (`Content-Type: application/secevent+jwt`, `Accept:
    /// application/json`), with its `Authorization` value if it set one,
    /// under the same address rules; the status the receiver answered.
    pub async fn push_set(
        &self,
        url: &str,
        authorization: Option<&str>,
        set: &str,
    ) -> Result<u16, FetchError> {
        let (http, u) = self.pinned(url).await?;
        let mut req = http
            .post(u)
            .header(reqwest::header::CONTENT_TYPE, "application/secevent+jwt")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(set.to_string());
        if let Some(a) = authorization {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| FetchError::Failed(format!("request: {}", without_url(&e))))?;
        Ok(resp.status().as_u16())
    }
}

/// A request error's text without the URL (which may carry a secret in
/// its query).
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url (") {
        e.truncate(i);
    }
    e
}

/// The seconds a `Cache-Control` value lets a response be reused:
/// `max-age`, or 0 for `no-store` / `no-cache`; `None` when it says neither.
pub fn max_age(cache_control: &str) -> Option<u64> {
    let mut age = None;
    for d in cache_control.split(',') {
        let d = d.trim().to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return Some(0);
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            age = v.trim_matches('"').parse().ok();
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_reads_cache_control() {
        assert_eq!(max_age("public, max-age=300"), Some(300));
        assert_eq!(max_age("max-age=\"60\""), Some(60));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("max-age=600, no-cache"), Some(0));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=x"), None);
    }

    #[test]
    fn only_public_addresses_are_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            // Issue 23 (13): every other IPv6 form that reaches IPv4.
            "::127.0.0.1",
            "::10.0.0.1",
            "::8.8.8.8",
            "fec0::1",
            "feff::1",
            "2002:7f00:1::",
            "2002:0808:0808::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "64:ff9b:1::a00:1",
            "::ffff:0:127.0.0.1",
            "2606:4700::5efe:127.0.0.1",
            "2606:4700::200:5efe:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "2606:4700::5efe:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_must_be_https_with_a_host_and_no_user_info() {
        assert!(check_url("https://keys.example.com/jwks.json", false).is_ok());
        for bad in [
            "http://keys.example.com/jwks.json",
            "file:///etc/passwd",
            "https://user:pw@example.com/",
            "https://example.com/#x",
            "not a url",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9/jwks", true).is_ok());
    }

    #[tokio::test]
    async fn a_private_address_is_refused_before_any_connection() {
        let f = Fetcher::new(false);
        let e = f.json("https://127.0.0.1:1/jwks.json").await.unwrap_err();
        assert!(matches!(e, FetchError::NotAllowed(_)), "{e}");
        let e = f.json("https://localhost:1/jwks.json").await.unwrap_err();
        assert!(matches!(e, FetchError::NotAllowed(_)), "{e}");
    }
}
