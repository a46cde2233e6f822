//! The docs stay true to the code: every documented environment variable
//! exists, every setting is documented, and every command the README shows runs.

use std::collections::BTreeSet;

fn read(path: &str) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + path).unwrap()
}

fn env_vars_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("TOLLGATE_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit())
            .collect();
        out.insert(name.trim_end_matches('_').to_string());
    }
    out
}

#[test]
fn documented_environment_variables_exist_and_every_setting_is_documented() {
    let known: BTreeSet<String> = tollgate::config::env_vars()
        .map(|(v, _)| v.to_string())
        .collect();
    let reference = read("docs/configuration.md");
    // The reference table has one row per declared setting, in the same
    // order, with the same TOML key, variable and default.
    let rows: Vec<Vec<String>> = reference
        .lines()
        .filter(|l| l.starts_with("| `") && l.contains("| `TOLLGATE_"))
        .map(|l| {
            l.split(" | ")
                .map(|c| c.trim_matches(['|', ' ']).to_string())
                .collect()
        })
        .collect();
    let declared = tollgate::config::SETTINGS;
    assert_eq!(
        rows.len(),
        declared.len(),
        "one row per setting in docs/configuration.md"
    );
    for (row, setting) in rows.iter().zip(declared) {
        assert_eq!(row[0], format!("`{}`", setting.key), "{row:?}");
        assert_eq!(row[1], format!("`{}`", setting.env), "{row:?}");
        assert_eq!(row[2], setting.default_doc, "default of {}", setting.env);
        if let Some(d) = setting.default {
            assert!(
                setting.default_doc.contains(d),
                "{}: {d} vs {}",
                setting.env,
                setting.default_doc
            );
        }
        if let tollgate::config::Kind::Int { min, max } = setting.kind {
            // A documented range must be the declared one.
            if let Some(range) = row[3].split(['(', ';', ':']).find(|p| p.contains('–')) {
                let range = range.trim().trim_end_matches(')');
                let (lo, hi) = range.split_once('–').unwrap();
                let num = |t: &str| {
                    t.trim()
                        .trim_matches(|c: char| !c.is_ascii_digit())
                        .parse::<i64>()
                };
                if let (Ok(lo), Ok(hi)) = (num(lo), num(hi)) {
                    assert_eq!((lo, hi), (min, max), "range of {}", setting.env);
                }
            }
        }
    }
    let mut docs = read("README.md");
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    for var in env_vars_in(&docs) {
        // TOLLGATE_TEST_* are read by tests and TOLLGATE_BENCH_* by the
        // benchmark harness, not by the server.
        if !var.starts_with("TOLLGATE_TEST") && !var.starts_with("TOLLGATE_BENCH") {
            assert!(
                known.contains(&var),
                "docs mention {var}, which Tollgate does not read"
            );
        }
    }
}

#[test]
fn every_tollgate_command_in_the_readme_exists() {
    let readme = read("README.md");
    let mut checked = 0;
    for line in readme.lines() {
        let line = line.trim();
        let rest = if let Some(r) = line.strip_prefix("tollgate ") {
            r
        } else if let Some(i) = line.find("cargo run --release -- ") {
            &line[i + "cargo run --release -- ".len()..]
        } else {
            continue;
        };
        let words: Vec<&str> = rest
            .split_whitespace()
            .take_while(|w| {
                !w.starts_with('-')
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c == '-' || c == '|')
            })
            .collect();
        if words.is_empty() {
            continue;
        }
        // "client create|list|show" lists alternatives.
        let first = words[0];
        let seconds: Vec<&str> = words
            .get(1)
            .map(|w| w.split('|').collect())
            .unwrap_or_default();
        let runs: Vec<Vec<&str>> = if seconds.is_empty() {
            vec![vec![first]]
        } else {
            seconds.iter().map(|s| vec![first, s]).collect()
        };
        for args in runs {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
                .args(&args)
                .arg("--help")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "README shows `tollgate {}`, which does not exist",
                args.join(" ")
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} commands found in the README");
}

#[tokio::test]
async fn openapi_document_is_served_and_describes_every_route() {
    let app = crate::helpers::TestApp::spawn().await;
    let r = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = [
        ("/oauth/token", "post"),
        ("/authentication/token", "post"),
        ("/oauth/introspect", "post"),
        ("/oauth/revoke", "post"),
        ("/.well-known/jwks.json", "get"),
        ("/.well-known/oauth-authorization-server", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/admin/clients", "get"),
        ("/admin/clients", "post"),
        ("/admin/clients/{id}", "get"),
        ("/admin/clients/{id}", "patch"),
        ("/admin/clients/{id}", "delete"),
        ("/admin/clients/{id}/disable", "post"),
        ("/admin/clients/{id}/enable", "post"),
        ("/admin/clients/{id}/rotate-secret", "post"),
        ("/admin/clients/{id}/revoke-tokens", "post"),
        ("/admin/clients/{id}/api-keys", "get"),
        ("/admin/clients/{id}/api-keys", "post"),
        ("/admin/api-keys/{id}", "delete"),
        ("/admin/api-keys/{id}/revoke", "post"),
        ("/admin/signing-keys", "get"),
        ("/admin/ssf/streams", "get"),
        ("/.well-known/ssf-configuration", "get"),
        ("/ssf/streams", "get"),
        ("/ssf/streams", "post"),
        ("/ssf/streams", "patch"),
        ("/ssf/streams", "put"),
        ("/ssf/streams", "delete"),
        ("/ssf/status", "get"),
        ("/ssf/status", "post"),
        ("/ssf/verify", "post"),
        ("/ssf/poll/{id}", "post"),
        ("/admin/signing-keys/rotate", "post"),
        ("/admin/signing-keys/{kid}/retire", "post"),
        ("/admin/audit", "get"),
        ("/admin/federation/issuers", "get"),
        ("/admin/federation/issuers", "post"),
        ("/admin/federation/issuers/{id}", "delete"),
        ("/admin/federation/rules", "get"),
        ("/admin/federation/rules", "post"),
        ("/admin/federation/rules/{id}", "delete"),
        ("/admin/federation/test", "post"),
        ("/admin/cimd/hosts", "get"),
        ("/admin/cimd/hosts", "post"),
        ("/admin/cimd/hosts/{host}", "delete"),
        ("/admin/cimd/blocks", "get"),
        ("/admin/cimd/blocks", "post"),
        ("/admin/cimd/unblock", "post"),
    ];
    for (path, method) in routes {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not described");
        assert_eq!(
            op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error",
            "{method} {path}"
        );
    }
}
