//! The console's pages, rendered on the server with `maud` (which escapes
//! every value it interpolates). Pure: each view takes what it shows and
//! returns markup; no script anywhere, so the strict CSP holds.

use maud::{html, Markup, DOCTYPE};

use crate::domain::{
    ApiKeyRecord, AuditEntry, AuditFilter, Client, ConsoleSession, SigningKeyRecord,
};
use crate::service::console::Overview;

/// What every signed-in page needs: the CSRF token of its forms.
pub(super) struct Frame<'a> {
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// The session (its id is shown in the footer).
    pub session: &'a ConsoleSession,
}

/// A UTC time as `2026-12-04 05:12:00Z`.
pub(super) fn time(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| at.to_string())
}

fn time_opt(at: Option<i64>) -> String {
    at.map(time).unwrap_or_else(|| "—".into())
}

/// What a path segment or query value keeps unencoded: RFC 3986 unreserved.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment or a query value, percent-encoded.
pub(super) fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// The path of a client's page.
pub(super) fn client_path(id: &str) -> String {
    format!("/console/clients/{}", seg(id))
}

fn head(title: &str, refresh: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            @if refresh {
                meta http-equiv="refresh" content="15";
            }
            title { (title) " · Tollgate console" }
            link rel="stylesheet" href="/console/assets/console.css";
        }
    }
}

/// A page outside a session (sign-in, errors before sign-in).
pub(super) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, false))
            body.bare {
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A signed-in page: navigation, flash message, body, sign-out.
pub(super) fn page(
    f: &Frame,
    title: &str,
    flash: Option<&str>,
    refresh: bool,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
        (head(title, refresh))
        body {
            header {
                nav {
                    strong.brand { "Tollgate" }
                    a href="/console" { "Overview" }
                    a href="/console/clients" { "Clients" }
                    a href="/console/signing-keys" { "Signing keys" }
                    a href="/console/ssf" { "Shared Signals" }
                    a href="/console/audit" { "Audit log" }
                    form.signout method="post" action="/console/logout" {
                        (csrf(f))
                        button type="submit" { "Sign out" }
                    }
                }
            }
            main {
                h1 { (title) }
                @if let Some(m) = flash {
                    p.flash role="status" { (m) }
                }
                (body)
            }
            footer { "Session " code { (f.session.id) } " · every action is audited as " code { (f.session.actor()) } }
        }
        }
    }
}

fn csrf(f: &Frame) -> Markup {
    html! { input type="hidden" name="csrf" value=(f.csrf); }
}

/// A form with one button that POSTs to `action`.
fn button(f: &Frame, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(f))
            button.(class) type="submit" { (label) }
        }
    }
}

/// The sign-in page of a login link: one button, so that a link scanner
/// fetching the URL does not use the link up.
pub(super) fn sign_in(token: &str) -> Markup {
    bare(
        "Sign in to the Tollgate console",
        html! {
            p { "This login link works once and for 10 minutes from when it was made." }
            form method="post" action="/console/login" {
                input type="hidden" name="token" value=(token);
                button.primary type="submit" { "Sign in" }
            }
        },
    )
}

/// The page shown without a session or link.
pub(super) fn signed_out(message: &str) -> Markup {
    bare(
        "Tollgate console",
        html! {
            p { (message) }
            p { "An admin makes a login link with " code { "tollgate console login-link" }
                " on the server, or with " code { "POST /admin/console/login-links" } "." }
        },
    )
}

/// An error page.
pub(super) fn error(f: Option<&Frame>, status: u16, message: &str) -> Markup {
    let body = html! {
        p.error { (message) }
        p { a href="/console" { "Back to the overview" } }
    };
    let title = format!("Error {status}");
    match f {
        Some(f) => page(f, &title, None, false, body),
        None => bare(&title, body),
    }
}

/// Asks before a destructive action: the same button again, confirmed.
pub(super) fn confirm(f: &Frame, action: &str, label: &str, question: &str, back: &str) -> Markup {
    page(
        f,
        "Please confirm",
        None,
        false,
        html! {
            p.warning { (question) }
            form method="post" action=(action) {
                (csrf(f))
                input type="hidden" name="confirm" value="yes";
                button.danger type="submit" { (label) }
                " "
                a.cancel href=(back) { "Cancel" }
            }
        },
    )
}

fn ms(seconds: f64) -> String {
    if seconds.is_infinite() {
        "> 2.5 s".into()
    } else {
        format!("≤ {} ms", seconds * 1000.0)
    }
}

/// The overview: live figures and the last hour's chart.
pub(super) fn overview(f: &Frame, o: &Overview) -> Markup {
    let peak = o
        .minutes
        .iter()
        .map(|(a, b)| (*a).max(*b))
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, h) = (600u64, 120u64);
    let bar = w / 60;
    let n = o.minutes.len() as u64;
    page(
        f,
        "Overview",
        None,
        true,
        html! {
            dl.figures {
                div { dt { "Tokens issued" } dd #tokens-issued { (o.now.issued) } }
                div { dt { "Failed authentications" } dd #failed-authentications { (o.now.failed_auth) } }
                div { dt { "Refusals" } dd #refusals { (o.now.refusals) } }
                div { dt { "p99 latency, last hour" } dd #p99 { (o.p99.map(ms).unwrap_or_else(|| "no requests".into())) } }
            }
            p.note { "Since this instance started; each instance of a fleet counts its own. The page refreshes every 15 seconds." }
            h2 { "Last hour" }
            figure {
                svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w} {h}")) width=(w) height=(h) role="img" aria-label="Tokens issued and failed authentications per minute, last hour" {
                    line x1="0" y1=(h) x2=(w) y2=(h) stroke="#888" {}
                    text x="4" y="12" font-size="10" fill="#4a5568" { "60 min ago" }
                    text x=(w - 4) y="12" font-size="10" fill="#4a5568" text-anchor="end" { "now" }
                    @for (i, (issued, failed)) in o.minutes.iter().enumerate() {
                        @let x = (60 - n + i as u64) * bar;
                        @let hi = issued * (h - 4) / peak;
                        @let hf = failed * (h - 4) / peak;
                        rect.issued x=(x) y=(h - hi) width=(bar - 2) height=(hi) fill="#2b6cb0" {
                            title { (issued) " issued" }
                        }
                        rect.failed x=(x + bar / 2) y=(h - hf) width=(bar / 2 - 1) height=(hf) fill="#c53030" {
                            title { (failed) " failed" }
                        }
                    }
                }
                figcaption { span.key-issued { "■" } " tokens issued, " span.key-failed { "■" } " failed authentications, per minute (peak " (peak) ")" }
            }
        },
    )
}

/// The clients list with its search box and pagination.
pub(super) fn clients(
    f: &Frame,
    query: &str,
    list: &[Client],
    next: Option<&str>,
    flash: Option<&str>,
) -> Markup {
    page(
        f,
        "Clients",
        flash,
        false,
        html! {
            div.toolbar {
                form.search method="get" action="/console/clients" {
                    label for="q" { "Search by name or id" }
                    input #q type="search" name="q" value=(query) maxlength="256";
                    button type="submit" { "Search" }
                }
                a.button.primary href="/console/clients/new" { "Create client" }
            }
            @if list.is_empty() {
                p { "No clients match." }
            } @else {
                table {
                    thead { tr { th { "Client id" } th { "Name" } th { "Auth method" } th { "State" } } }
                    tbody {
                        @for c in list {
                            tr {
                                td { a href=(client_path(&c.id)) { code { (c.id) } } }
                                td { (c.name) }
                                td { (c.auth.method().as_str()) }
                                td { (if c.disabled { "disabled" } else { "enabled" }) }
                            }
                        }
                    }
                }
            }
            @if let Some(after) = next {
                p { a rel="next" href=(format!("/console/clients?q={}&after={}", seg(query), seg(after))) { "Next page" } }
            }
        },
    )
}

/// The form of a new client.
pub(super) fn new_client(f: &Frame) -> Markup {
    page(
        f,
        "Create client",
        None,
        false,
        html! {
            form.stack method="post" action="/console/clients" {
                (csrf(f))
                label { "Name" input type="text" name="name" required maxlength="200"; }
                label { "Owner (team or contact)" input type="text" name="owner" maxlength="200"; }
                label { "Scopes (space-separated)" input type="text" name="scopes"; }
                label { "Audiences (space-separated; the first is the default)" input type="text" name="audiences"; }
                label { "Authentication method"
                    select name="token_endpoint_auth_method" {
                        option value="client_secret_basic" selected { "client_secret_basic" }
                        option value="client_secret_post" { "client_secret_post" }
                    }
                }
                label { "Token lifetime in seconds (empty: server default)" input type="number" name="token_ttl" min="1"; }
                label { "Token quota per window (empty: server default, 0: none)" input type="number" name="token_quota" min="0"; }
                p.note { "Clients with keys or certificates (private_key_jwt, tls_client_auth) are created with the admin API or the command line." }
                button.primary type="submit" { "Create client" }
            }
        },
    )
}

/// A secret shown once, right after it was made.
pub(super) fn secret_once(
    f: &Frame,
    title: &str,
    rows: &[(&str, &str)],
    secret_label: &str,
    secret: &str,
    back: &str,
) -> Markup {
    page(
        f,
        title,
        None,
        false,
        html! {
            dl.details {
                @for (k, v) in rows {
                    dt { (k) } dd { code { (v) } }
                }
                dt { (secret_label) }
                dd { code #secret.secret { (secret) } }
            }
            p.warning { "Copy it now: it is stored only as a digest and will not be shown again." }
            p { a href=(back) { "Continue" } }
        },
    )
}

fn quota(c: &Client) -> String {
    match c.token_quota {
        None => "server default".into(),
        Some(0) => "none".into(),
        Some(n) => format!(
            "{n} per {} s, ban {} s",
            c.quota_window.map_or("default".into(), |w| w.to_string()),
            c.quota_ban.map_or("default".into(), |b| b.to_string())
        ),
    }
}

/// A client with its keys and its actions.
pub(super) fn client(
    f: &Frame,
    c: &Client,
    keys: &[ApiKeyRecord],
    now: i64,
    flash: Option<&str>,
) -> Markup {
    let base = client_path(&c.id);
    let secret_auth = c.auth.uses_secret();
    page(
        f,
        &c.name,
        flash,
        false,
        html! {
            dl.details {
                dt { "Client id" } dd { code #client-id { (c.id) } }
                dt { "State" } dd #state { (if c.disabled { "disabled" } else { "enabled" }) }
                dt { "Owner" } dd { (c.owner.as_deref().unwrap_or("—")) }
                dt { "Auth method" } dd { (c.auth.method().as_str()) }
                dt { "Scopes" } dd { @if c.scopes.is_empty() { "none" } @else { @for s in &c.scopes { code { (s) } " " } } }
                dt { "Audiences" } dd { @if c.audiences.is_empty() { "server default" } @else { @for a in &c.audiences { code { (a) } " " } } }
                dt { "Token lifetime" } dd { (c.token_ttl.map_or("server default".into(), |t| format!("{t} s"))) }
                dt { "Quota" } dd { (quota(c)) }
                dt { "DPoP-bound tokens" } dd { (if c.dpop_bound_access_tokens { "required" } else { "no" }) }
                dt { "Claims" } dd #claims {
                    @match &c.claims {
                        None => "none",
                        Some(m) => code { (serde_json::Value::Object(m.clone())) },
                    }
                }
                dt { "Token exchange" } dd #token-exchange {
                    @match &c.token_exchange {
                        None => "not allowed",
                        Some(p) => {
                            "subject audiences: " @for a in &p.subject_audiences { code { (a) } " " }
                            "; subject issuers: "
                            @if p.subject_issuers.is_empty() { "Tollgate's own tokens only" }
                            @else { @for i in &p.subject_issuers { code { (i) } " " } }
                            "; transaction tokens: " (if p.txn_tokens { "yes" } else { "no" })
                        }
                    }
                }
                dt { "Tokens revoked before" } dd { (time_opt(c.tokens_revoked_before)) }
                dt { "Created" } dd { (time(c.created_at)) }
                dt { "Updated" } dd { (time(c.updated_at)) }
            }
            div.actions {
                @if c.disabled {
                    (button(f, &format!("{base}/enable"), "Enable", "primary"))
                } @else {
                    (button(f, &format!("{base}/disable"), "Disable", "danger"))
                }
                (button(f, &format!("{base}/revoke-tokens"), "Revoke all tokens", "danger"))
                @if secret_auth {
                    (button(f, &format!("{base}/rotate-secret"), "Rotate secret", "danger"))
                }
            }
            h2 { "API keys" }
            @if keys.is_empty() {
                p { "No API keys." }
            } @else {
                table #api-keys {
                    thead { tr { th { "Id" } th { "Name" } th { "Prefix" } th { "Last 4" } th { "Created" } th { "Last used" } th { "State" } th {} } }
                    tbody {
                        @for k in keys {
                            @let state = k.state(now);
                            tr data-key=(k.id) {
                                td { code { (k.id) } }
                                td { (k.name.as_deref().unwrap_or("—")) }
                                td { code { (k.prefix) } }
                                td { code { (k.last4) } }
                                td { (time(k.created_at)) }
                                td { (time_opt(k.last_used_at)) }
                                td.state { (state.as_str()) }
                                td {
                                    @if state == crate::domain::ApiKeyState::Active {
                                        form.inline method="post" action=(format!("/console/api-keys/{}/revoke", seg(&k.id))) {
                                            (csrf(f))
                                            input type="hidden" name="client" value=(c.id);
                                            button.danger type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form.inline method="post" action=(format!("{base}/api-keys")) {
                (csrf(f))
                label { "Name " input type="text" name="name" maxlength="200"; }
                " "
                button.primary type="submit" { "Create API key" }
            }
        },
    )
}

/// The Shared Signals streams receivers made: delivery, status, backlog
/// and the last delivery error (never the receiver's authorization header).
pub(super) fn ssf_streams(f: &Frame, streams: &[serde_json::Value]) -> Markup {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    page(
        f,
        "Shared Signals",
        None,
        false,
        html! {
            p.note { "Streams of security events (OpenID SSF 1.0) that resource servers registered with a token holding tollgate:ssf. Revocations and client changes are pushed or polled within a second; a receiver failing for 24 hours has its stream paused." }
            @if streams.is_empty() {
                p { "No stream yet." }
            } @else {
                table {
                    thead { tr { th { "Stream" } th { "Receiver" } th { "Delivery" } th { "Status" } th { "Backlog" } th { "Last error" } } }
                    tbody {
                        @for s in streams {
                            tr {
                                td { code { (text(&s["stream_id"])) } }
                                td { a href=(format!("/console/clients/{}", seg(&text(&s["aud"])))) { (text(&s["aud"])) } }
                                td { (if text(&s["delivery"]["method"]).ends_with("8935") { "push" } else { "poll" }) " " code { (text(&s["delivery"]["endpoint_url"])) } }
                                td { (text(&s["status"])) @if let Some(r) = s["status_reason"].as_str() { " (" (r) ")" } }
                                td { (s["backlog"].as_i64().unwrap_or(0)) }
                                td { (text(&s["last_error"])) @if let Some(at) = s["last_error_at"].as_i64() { " at " (time(at)) } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The signing keys, newest first, with their actions.
pub(super) fn signing_keys(
    f: &Frame,
    keys: &[SigningKeyRecord],
    now: i64,
    flash: Option<&str>,
) -> Markup {
    page(
        f,
        "Signing keys",
        flash,
        false,
        html! {
            div.actions { (button(f, "/console/signing-keys/rotate", "Rotate", "primary")) }
            p.note { "Rotate makes a new key, published at once and signing after the pre-publication delay. Retire stops a key signing; tokens it signed stay valid until they expire." }
            table {
                thead { tr { th { "Key id" } th { "Algorithm" } th { "Held in" } th { "Created" } th { "Signs from" } th { "Retired" } th { "Compromised" } th {} } }
                tbody {
                    @for k in keys {
                        tr {
                            td { code { (k.kid) } }
                            td { (k.alg) }
                            td { (match k.location { crate::domain::KeyLocation::File => "key file", crate::domain::KeyLocation::Pkcs11 => "PKCS#11 token" }) }
                            td { (time(k.created_at)) }
                            td { (time(k.activates_at)) (if k.activates_at > now { " (pending)" } else { "" }) }
                            td { (time_opt(k.retired_at)) }
                            td { (time_opt(k.compromised_at)) }
                            td {
                                @if k.retired_at.is_none() {
                                    (button(f, &format!("/console/signing-keys/{}/retire", seg(&k.kid)), "Retire", "danger"))
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The audit log with its filters, newest first.
pub(super) fn audit(
    f: &Frame,
    filter: &AuditFilter,
    entries: &[AuditEntry],
    older: Option<i64>,
) -> Markup {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let query = format!(
        "actor={}&action={}&target={}",
        seg(&v(&filter.actor)),
        seg(&v(&filter.action)),
        seg(&v(&filter.target))
    );
    page(
        f,
        "Audit log",
        None,
        false,
        html! {
            form.search method="get" action="/console/audit" {
                label { "Actor " input type="text" name="actor" value=(v(&filter.actor)) maxlength="256"; }
                label { "Action " input type="text" name="action" value=(v(&filter.action)) maxlength="256" placeholder="client.disable"; }
                label { "Target " input type="text" name="target" value=(v(&filter.target)) maxlength="256"; }
                button type="submit" { "Filter" }
            }
            @if entries.is_empty() {
                p { "No entries match." }
            } @else {
                table #audit {
                    thead { tr { th { "#" } th { "Time" } th { "Actor" } th { "Action" } th { "Target" } th { "Detail" } } }
                    tbody {
                        @for e in entries {
                            tr {
                                td { (e.id) }
                                td { (time(e.at)) }
                                td { code { (e.actor) } }
                                td { code { (e.action) } }
                                td { code { (e.target.as_deref().unwrap_or("—")) } }
                                td.detail { (e.detail.to_string()) }
                            }
                        }
                    }
                }
            }
            @if let Some(before) = older {
                p { a rel="next" href=(format!("/console/audit?{query}&before={before}")) { "Older entries" } }
            }
        },
    )
}

/// The stylesheet, served from the binary.
pub(super) const STYLESHEET: &str = include_str!("console.css");
