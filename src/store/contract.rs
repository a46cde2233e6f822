//! One behavioural contract for every [`Store`] backend, run against SQLite
//! always and against PostgreSQL when `TOLLGATE_TEST_PG_URL` is set (each
//! test in a fresh schema); without it the PostgreSQL runs say they are
//! skipped.

use super::*;
use crate::domain::{ClientAuth, KeySource};
use crate::limits::Limiter;

fn audit(action: &str) -> AuditEntry {
    AuditEntry::fixture(action)
}

fn client(id: &str) -> Client {
    Client {
        owner: Some("team".into()),
        scopes: vec!["a".into(), "b".into()],
        audiences: vec!["https://x".into()],
        token_ttl: Some(60),
        token_quota: Some(4),
        quota_ban: Some(60),
        created_at: 1,
        updated_at: 1,
        ..Client::fixture(id)
    }
}

fn key(id: &str, client_id: &str, digest: u8) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        client_id: client_id.into(),
        name: Some("k".into()),
        digest: vec![digest; 32],
        prefix: "tg_live_".into(),
        last4: "abcd".into(),
        created_at: 5,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    }
}

/// A store of each kind the machine can run, with what keeps it alive.
enum Held {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { url: String, schema: String },
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Held::Postgres { url, schema } = self {
            // On a thread of its own, with this worker handed off meanwhile:
            // the store's connections run on the test's runtime, and one may
            // still have to send the ROLLBACK of a dropped transaction
            // before the schema can go.
            let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            let url = url.clone();
            let drop_schema =
                move || std::thread::spawn(move || postgres::execute_once(&url, &sql)).join();
            let _ = match tokio::runtime::Handle::try_current() {
                Ok(_) => tokio::task::block_in_place(drop_schema),
                Err(_) => drop_schema(),
            };
        }
    }
}

async fn pg_exec(url: &str, sql: &str) -> Result<Option<String>> {
    postgres::execute(url, sql).await
}

async fn sqlite() -> (Held, Box<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    (Held::Sqlite(dir), Box::new(s))
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// `TOLLGATE_TEST_PG_URL`, or `None` after saying that `test` is skipped.
pub(super) fn test_pg_url(test: &str) -> Option<String> {
    let url = std::env::var("TOLLGATE_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("SKIPPED {test} on PostgreSQL: set TOLLGATE_TEST_PG_URL to run it");
    }
    url
}

/// A PostgreSQL store in a fresh schema, and its URL (for a second handle).
async fn postgres(test: &str) -> Option<(Held, Box<dyn Store>, String)> {
    let url = test_pg_url(test)?;
    let schema = format!(
        "tgunit_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    pg_exec(
        &url,
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
    )
    .await
    .expect("TOLLGATE_TEST_PG_URL answers");
    let sep = if url.contains('?') { '&' } else { '?' };
    let db = format!("{url}{sep}options=-csearch_path%3D{schema}");
    let store = PostgresStore::open(&db, 4)
        .await
        .expect("open PostgreSQL store");
    Some((Held::Postgres { url, schema }, Box::new(store), db))
}

/// Runs `check` on SQLite and, when it is configured, PostgreSQL.
async fn on_each(test: &str, check: impl AsyncFn(&dyn Store)) {
    let (_held, s) = sqlite().await;
    check(s.as_ref()).await;
    if let Some((_held, s, _)) = postgres(test).await {
        check(s.as_ref()).await;
    }
}

fn stream(id: &str, client_id: &str, created_at: i64) -> SsfStream {
    SsfStream {
        id: id.into(),
        client_id: client_id.into(),
        description: Some("rs".into()),
        delivery: SsfDelivery::Push {
            endpoint_url: "https://rs.example/events".into(),
            authorization_header: Some("Bearer x".into()),
        },
        events_requested: vec!["urn:a".into(), "urn:b".into()],
        status: StreamStatus::Enabled,
        status_reason: None,
        created_at,
        updated_at: created_at,
        last_error: None,
        last_error_at: None,
        failing_since: None,
        attempts: 0,
        retry_at: 0,
    }
}

fn signal(stream_id: &str, jti: &str, source: &str) -> NewSignal {
    NewSignal {
        stream_id: stream_id.into(),
        jti: jti.into(),
        source: source.into(),
        set: format!("set-{jti}"),
        created_at: 5,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_streams_and_events_keep_order_once_per_source_and_one_lease() {
    on_each("signals", async |s| {
        let g = s.signals();
        let a = stream("ss_a", "tgc_r", 1);
        g.create_stream(&a, &audit("ssf.stream.create"))
            .await
            .unwrap();
        let mut b = stream("ss_b", "tgc_r2", 2);
        b.delivery = SsfDelivery::Poll;
        g.create_stream(&b, &audit("ssf.stream.create"))
            .await
            .unwrap();
        assert_eq!(g.get_stream("ss_a").await.unwrap(), Some(a.clone()));
        assert_eq!(g.list_streams().await.unwrap(), vec![a.clone(), b.clone()]);

        // Each source once per stream, whoever stores it; order kept.
        assert_eq!(g.signal_cursor().await.unwrap(), None);
        let first = [
            signal("ss_a", "j1", "audit:1"),
            signal("ss_a", "j2", "audit:2"),
        ];
        assert_eq!(g.add_signals(&first, Some(2)).await.unwrap(), 2);
        let again = [
            signal("ss_a", "j1b", "audit:1"),
            signal("ss_a", "j3", "audit:3"),
        ];
        assert_eq!(g.add_signals(&again, Some(1)).await.unwrap(), 1);
        assert_eq!(g.signal_cursor().await.unwrap(), Some(2), "never back");
        let pending = g.pending_signals("ss_a", 10).await.unwrap();
        let jtis: Vec<&str> = pending.iter().map(|p| p.jti.as_str()).collect();
        assert_eq!(jtis, ["j1", "j2", "j3"]);
        assert_eq!(pending[0].set, "set-j1");
        assert!(pending[0].seq < pending[1].seq);
        assert_eq!(
            g.signal_backlog().await.unwrap(),
            vec![("ss_a".to_string(), 3)]
        );
        assert_eq!(
            g.mark_delivered("ss_a", &["j1".into(), "j2".into(), "nope".into()], 9)
                .await
                .unwrap(),
            2
        );
        assert_eq!(g.pending_signals("ss_a", 10).await.unwrap().len(), 1);
        assert_eq!(g.prune_signals(10).await.unwrap(), 2);
        // Discarding (a disabled stream) empties the stream, nothing else.
        g.add_signals(&[signal("ss_b", "k1", "audit:9")], None)
            .await
            .unwrap();
        assert_eq!(g.discard_signals("ss_a", 11).await.unwrap(), 1);
        assert!(g.pending_signals("ss_a", 10).await.unwrap().is_empty());
        assert_eq!(g.pending_signals("ss_b", 10).await.unwrap().len(), 1);
        g.add_signals(&[signal("ss_a", "j4", "audit:4")], None)
            .await
            .unwrap();

        // One instance holds a stream until its lease ends.
        assert!(g.lease_stream("ss_a", "one", 100, 130).await.unwrap());
        assert!(!g.lease_stream("ss_a", "two", 110, 140).await.unwrap());
        assert!(
            g.lease_stream("ss_a", "one", 110, 140).await.unwrap(),
            "renewed"
        );
        assert!(
            g.lease_stream("ss_a", "two", 141, 170).await.unwrap(),
            "expired"
        );

        // Delivery state and status write back; delete takes the events.
        let mut a2 = a.clone();
        a2.status = StreamStatus::Paused;
        a2.status_reason = Some("down".into());
        a2.last_error = Some("the receiver answered 500".into());
        a2.attempts = 3;
        a2.retry_at = 50;
        assert!(g.update_stream(&a2, None).await.unwrap());
        assert_eq!(g.get_stream("ss_a").await.unwrap(), Some(a2));
        assert!(g
            .delete_stream("ss_a", &audit("ssf.stream.delete"))
            .await
            .unwrap());
        assert!(!g
            .delete_stream("ss_a", &audit("ssf.stream.delete"))
            .await
            .unwrap());
        assert!(g.pending_signals("ss_a", 10).await.unwrap().is_empty());
        assert_eq!(g.list_streams().await.unwrap(), vec![b]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_round_trip_and_update_and_delete_with_their_audit() {
    on_each("clients", async |s| {
        s.create_client(&client("c1"), Some(&[1; 32]), &audit("create"))
            .await
            .unwrap();
        assert_eq!(s.get_client("c1").await.unwrap().unwrap(), client("c1"));
        assert!(s.get_client("nobody").await.unwrap().is_none());
        // A cache miss loads the client with its secrets; an unknown id
        // reads a decoy alike (issue 23, item 11) and gets nothing of it.
        let (found, secrets) = s.load_client("c1", 0).await.unwrap();
        assert_eq!(found, Some(client("c1")));
        assert_eq!(secrets.len(), 1);
        for unknown in ["nobody", "c"] {
            let (found, secrets) = s.load_client(unknown, 0).await.unwrap();
            assert!(found.is_none() && secrets.is_empty(), "{unknown}");
        }
        // Rotated: both secrets, by id, while the old one lives; only the
        // new one once it has expired. A client without secrets has none.
        assert!(s
            .rotate_secret("c1", &[4; 32], 10, 500, 5, &audit("rotate"))
            .await
            .unwrap());
        let (found, secrets) = s.load_client("c1", 499).await.unwrap();
        assert_eq!(found.map(|c| c.id), Some("c1".to_string()));
        let digests: Vec<_> = secrets.iter().map(|x| x.digest[0]).collect();
        assert_eq!(digests, [1, 4]);
        assert!(secrets[0].id < secrets[1].id && secrets[0].expires_at == Some(500));
        let (_, secrets) = s.load_client("c1", 500).await.unwrap();
        assert_eq!(secrets.iter().map(|x| x.digest[0]).collect::<Vec<_>>(), [4]);
        s.create_client(&client("bare"), None, &audit("create"))
            .await
            .unwrap();
        let (found, secrets) = s.load_client("bare", 0).await.unwrap();
        assert_eq!(found, Some(client("bare")));
        assert!(secrets.is_empty());
        assert!(s.delete_client("bare", &audit("delete")).await.unwrap());
        let mut c = client("c1");
        c.disabled = true;
        c.scopes = vec!["z".into()];
        c.token_quota = None;
        assert!(s.update_client(&c, &audit("update")).await.unwrap());
        assert_eq!(s.get_client("c1").await.unwrap().unwrap(), c);
        assert!(!s
            .update_client(&client("c9"), &audit("update"))
            .await
            .unwrap());
        s.create_client(&client("c0"), Some(&[2; 32]), &audit("create"))
            .await
            .unwrap();
        let ids: Vec<String> = s
            .list_clients(None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["c0", "c1"]);
        assert_eq!(s.list_clients(Some("c0"), 10).await.unwrap().len(), 1);
        assert!(s.delete_client("c1", &audit("delete")).await.unwrap());
        assert!(!s.delete_client("c1", &audit("delete")).await.unwrap());
        let actions: Vec<String> = s
            .list_audit(0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            actions,
            ["create", "rotate", "create", "delete", "update", "create", "delete"]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_leaves_no_audit_entry() {
    on_each("atomic audit", async |s| {
        s.create_client(&client("c"), Some(&[0; 32]), &audit("create"))
            .await
            .unwrap();
        assert!(s
            .create_client(&client("c"), Some(&[0; 32]), &audit("create"))
            .await
            .is_err());
        assert_eq!(s.list_audit(0, 10).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_at_most_max_live_secrets() {
    on_each("rotation", async |s| {
        s.create_client(&client("c"), Some(&[0; 32]), &audit("create"))
            .await
            .unwrap();
        for i in 1..=7u8 {
            assert!(s
                .rotate_secret("c", &[i; 32], 10, 10_000, 5, &audit("rotate"))
                .await
                .unwrap());
        }
        let live = s.live_secrets("c", 10).await.unwrap();
        assert_eq!(live.len(), 5);
        assert_eq!(live.last().unwrap().digest, vec![7u8; 32]);
        assert!(!s
            .rotate_secret("nobody", &[1; 32], 10, 10, 5, &audit("rotate"))
            .await
            .unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_limited_revocable_and_found_by_digest() {
    on_each("api keys", async |s| {
        s.create_client(&client("c"), Some(&[0; 32]), &audit("create"))
            .await
            .unwrap();
        for i in 0..3u8 {
            assert_eq!(
                s.create_api_key(&key(&format!("k{i}"), "c", i), 3, 10, &audit("key"))
                    .await
                    .unwrap(),
                ApiKeyCreate::Created
            );
        }
        assert_eq!(
            s.create_api_key(&key("k9", "c", 9), 3, 10, &audit("key"))
                .await
                .unwrap(),
            ApiKeyCreate::LimitReached(3)
        );
        assert_eq!(
            s.create_api_key(&key("kx", "nobody", 8), 3, 10, &audit("key"))
                .await
                .unwrap(),
            ApiKeyCreate::NoSuchClient
        );
        assert_eq!(s.find_api_key(&[1; 32]).await.unwrap().unwrap().id, "k1");
        assert!(s.revoke_api_key("k1", 20, &audit("revoke")).await.unwrap());
        assert!(!s.revoke_api_key("k1", 21, &audit("revoke")).await.unwrap());
        assert_eq!(
            s.get_api_key("k1").await.unwrap().unwrap().revoked_at,
            Some(20)
        );
        // A revoked key frees a slot.
        assert_eq!(
            s.create_api_key(&key("k9", "c", 9), 3, 30, &audit("key"))
                .await
                .unwrap(),
            ApiKeyCreate::Created
        );
        s.touch_api_keys(&[("k0".into(), 100), ("k2".into(), 50)])
            .await
            .unwrap();
        s.touch_api_keys(&[("k0".into(), 90)]).await.unwrap();
        assert_eq!(
            s.get_api_key("k0").await.unwrap().unwrap().last_used_at,
            Some(100)
        );
        assert_eq!(s.list_api_keys("c").await.unwrap().len(), 4);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assertion_is_used_once_until_it_expires_and_then_pruned() {
    on_each("assertions", async |s| {
        assert!(s
            .use_once(OneTime::Assertion { client_id: "c" }, "j1", 100, 10)
            .await
            .unwrap());
        assert!(
            !s.use_once(OneTime::Assertion { client_id: "c" }, "j1", 100, 50)
                .await
                .unwrap(),
            "a replay"
        );
        assert!(
            s.use_once(OneTime::Assertion { client_id: "other" }, "j1", 100, 50)
                .await
                .unwrap(),
            "per client"
        );
        // Once expired, the jti may be seen again (its assertion cannot be).
        assert!(s
            .use_once(OneTime::Assertion { client_id: "c" }, "j1", 300, 150)
            .await
            .unwrap());
        assert!(!s
            .use_once(OneTime::Assertion { client_id: "c" }, "j1", 300, 160)
            .await
            .unwrap());
        s.prune_revocations(1_000).await.unwrap();
        assert!(s
            .use_once(OneTime::Assertion { client_id: "c" }, "j1", 2_000, 1_000)
            .await
            .unwrap());
        // Concurrent uses share commits: each distinct jti is new once, a
        // jti sent many times at once is new once.
        let uses: Vec<_> = (0..40)
            .map(|i| {
                s.use_once(
                    OneTime::Assertion { client_id: "c" },
                    if i % 2 == 0 { "same" } else { "odd" },
                    3_000,
                    1_000,
                )
            })
            .collect();
        let answers = futures_util::future::join_all(uses).await;
        assert_eq!(answers.iter().filter(|a| *a.as_ref().unwrap()).count(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_character_is_unstorable_text_not_a_database_fault() {
    on_each("nul_text", async |s| {
        // SQLite stores and compares it; PostgreSQL refuses it, and says so
        // as a request error (400 above), never as a fault (500).
        match s.delete_client("tgc_\0x", &audit("client.delete")).await {
            Ok(deleted) => assert!(!deleted),
            Err(StoreError::Unstorable(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
        match s.console().revoke_session("cs_\0", 1, &audit("x")).await {
            Ok(revoked) => assert!(!revoked),
            Err(StoreError::Unstorable(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    })
    .await;
}

fn link(id: &str, created_at: i64) -> ConsoleSession {
    ConsoleSession {
        id: id.into(),
        created_by: "cli".into(),
        created_at,
        link_expires_at: created_at + ConsoleSession::LINK_TTL,
        opened_at: None,
        last_seen_at: None,
        revoked_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_link_opens_one_session_within_its_time_and_is_revocable() {
    on_each("console_sessions", async |s| {
        let c = s.console();
        let open_audit =
            AuditEntry::new(0, "console", "console.login", None, serde_json::json!({}));
        c.create_login_link(&link("cs_a", 1_000), &[1; 32], &audit("console.login_link"))
            .await
            .unwrap();
        // Past its 10 minutes, the link opens nothing.
        assert!(c
            .open_session(&[1; 32], &[2; 32], 1_600, &open_audit)
            .await
            .unwrap()
            .is_none());
        // Within them, once.
        let opened = c
            .open_session(&[1; 32], &[2; 32], 1_100, &open_audit)
            .await
            .unwrap()
            .expect("opened");
        assert_eq!(
            (opened.opened_at, opened.last_seen_at),
            (Some(1_100), Some(1_100))
        );
        assert!(
            c.open_session(&[1; 32], &[3; 32], 1_101, &open_audit)
                .await
                .unwrap()
                .is_none(),
            "a link is single-use"
        );
        assert!(
            c.find_session(&[1; 32]).await.unwrap().is_none(),
            "the link is no cookie"
        );
        assert_eq!(c.find_session(&[2; 32]).await.unwrap().unwrap().id, "cs_a");
        c.touch_session("cs_a", 1_200).await.unwrap();
        c.touch_session("cs_a", 1_150).await.unwrap();
        let found = c.find_session(&[2; 32]).await.unwrap().unwrap();
        assert_eq!(found.last_seen_at, Some(1_200), "never moves back");
        // The login is audited with the session as actor.
        let logins = c
            .search_audit(
                &AuditFilter {
                    action: Some("console.login".into()),
                    ..AuditFilter::default()
                },
                None,
                10,
            )
            .await
            .unwrap();
        assert_eq!(logins.len(), 1);
        assert_eq!(logins[0].actor, "console:cs_a");
        assert_eq!(logins[0].target.as_deref(), Some("cs_a"));
        // A revoked link opens nothing; a revoked session stays revoked.
        c.create_login_link(&link("cs_b", 1_000), &[4; 32], &audit("console.login_link"))
            .await
            .unwrap();
        assert!(c
            .revoke_session("cs_b", 1_050, &audit("console.session.revoke"))
            .await
            .unwrap());
        assert!(!c
            .revoke_session("cs_b", 1_051, &audit("console.session.revoke"))
            .await
            .unwrap());
        assert!(c
            .open_session(&[4; 32], &[5; 32], 1_060, &open_audit)
            .await
            .unwrap()
            .is_none());
        assert!(c
            .revoke_session("cs_a", 1_300, &audit("console.session.revoke"))
            .await
            .unwrap());
        let all = c.list_sessions().await.unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|s| s.revoked_at.is_some()));
        assert!(!c.revoke_session("nope", 1, &audit("x")).await.unwrap());
        assert_eq!(c.prune_sessions(1_001).await.unwrap(), 2);
        assert!(c.list_sessions().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_searched_by_id_or_name_and_audit_filtered_newest_first() {
    on_each("console_search", async |s| {
        for (id, name) in [
            ("tgc_a1", "Billing API"),
            ("tgc_b2", "web"),
            ("tgc_c3", "billing-batch"),
            ("tgc_d4", "x"),
        ] {
            s.create_client(
                &Client {
                    name: name.into(),
                    ..client(id)
                },
                Some(&[1; 32]),
                &AuditEntry::new(5, "cli", "client.create", Some(id), serde_json::json!({})),
            )
            .await
            .unwrap();
        }
        let c = s.console();
        let ids = |v: Vec<Client>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(
            ids(c.search_clients("BILLING", None, 10).await.unwrap()),
            ["tgc_a1", "tgc_c3"]
        );
        assert_eq!(
            ids(c.search_clients("billing", None, 1).await.unwrap()),
            ["tgc_a1"]
        );
        assert_eq!(
            ids(c
                .search_clients("billing", Some("tgc_a1"), 10)
                .await
                .unwrap()),
            ["tgc_c3"]
        );
        assert_eq!(
            ids(c.search_clients("B2", None, 10).await.unwrap()),
            ["tgc_b2"]
        );
        // LIKE wildcards are plain text here.
        assert!(c.search_clients("%", None, 10).await.unwrap().is_empty());
        assert!(
            c.search_clients("_", None, 10).await.unwrap().len() == 4,
            "every id has an underscore"
        );
        let by = |actor: Option<&str>, action: Option<&str>, target: Option<&str>| AuditFilter {
            actor: actor.map(Into::into),
            action: action.map(Into::into),
            target: target.map(Into::into),
        };
        s.append_audit(&AuditEntry::new(
            6,
            "console:cs_x",
            "client.disable",
            Some("tgc_b2"),
            serde_json::json!({}),
        ))
        .await
        .unwrap();
        let newest = c
            .search_audit(&AuditFilter::default(), None, 10)
            .await
            .unwrap();
        assert_eq!(newest.len(), 5);
        assert_eq!(newest[0].action, "client.disable", "newest first");
        let older = c
            .search_audit(&AuditFilter::default(), Some(newest[1].id), 10)
            .await
            .unwrap();
        assert_eq!(older.len(), 3);
        assert_eq!(
            c.search_audit(&by(Some("console:cs_x"), None, None), None, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            c.search_audit(&by(None, Some("client.create"), None), None, 10)
                .await
                .unwrap()
                .len(),
            4
        );
        assert_eq!(
            c.search_audit(
                &by(Some("cli"), Some("client.create"), Some("tgc_c3")),
                None,
                10
            )
            .await
            .unwrap()
            .len(),
            1
        );
        assert!(c
            .search_audit(&by(Some("cli"), Some("client.disable"), None), None, 10)
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

fn issuer(id: &str, issuer: &str) -> FederationIssuer {
    FederationIssuer {
        id: id.into(),
        issuer: issuer.into(),
        jwks_uri: None,
        jwks: Some(
            serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}),
        ),
        created_at: 3,
        id_jag: issuer.contains("jag"),
    }
}

fn rule(id: &str, issuer: &str, client_id: &str, created_at: i64) -> FederationRule {
    FederationRule {
        id: id.into(),
        issuer: issuer.into(),
        audience: "tollgate".into(),
        subject: Some("system:serviceaccount:ns:*".into()),
        claims: [("repository_id".to_string(), "12*".to_string())].into(),
        client_id: client_id.into(),
        scopes: Some(vec!["a".into()]),
        single_use: true,
        created_at,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_issuers_and_rules_round_trip_and_go_with_their_client() {
    on_each("federation", async |s| {
        s.create_client(&client("c1"), None, &audit("create"))
            .await
            .unwrap();
        let i = issuer("fi_1", "https://k8s");
        assert!(s.add_federation_issuer(&i, &audit("fi")).await.unwrap());
        let taken = FederationIssuer {
            id: "fi_2".into(),
            ..i.clone()
        };
        assert!(!s.add_federation_issuer(&taken, &audit("fi")).await.unwrap());
        let (late, early) = (
            rule("fr_b", "https://k8s", "c1", 9),
            rule("fr_a", "https://k8s", "c1", 8),
        );
        assert!(s.add_federation_rule(&late, &audit("fr")).await.unwrap());
        assert!(s.add_federation_rule(&early, &audit("fr")).await.unwrap());
        assert!(
            !s.add_federation_rule(&rule("fr_c", "https://other", "c1", 1), &audit("fr"))
                .await
                .unwrap(),
            "untrusted issuer"
        );
        assert!(
            !s.add_federation_rule(&rule("fr_c", "https://k8s", "nobody", 1), &audit("fr"))
                .await
                .unwrap(),
            "no client"
        );
        let f = s.federation().await.unwrap();
        assert_eq!(f.issuers, vec![i.clone()]);
        // The ID-JAG mark is kept (schema 9).
        let jag = issuer("fi_j", "https://jag-idp");
        assert!(jag.id_jag);
        assert!(s
            .add_federation_issuer(&jag, &audit("fi.jag"))
            .await
            .unwrap());
        let kept = s.federation().await.unwrap();
        assert!(kept.issuers.iter().any(|x| x == &jag), "{:?}", kept.issuers);
        assert!(s
            .remove_federation_issuer("fi_j", &audit("fi.jag.rm"))
            .await
            .unwrap());
        // URL clients' hosts and blocks (schema 9): stored, replaced,
        // removed, in the same snapshot.
        let host = crate::domain::CimdHost {
            host: "*.agents.example".into(),
            scopes: vec!["tools:call".into()],
            audiences: vec!["https://mcp".into()],
            created_at: 5,
        };
        s.put_cimd_host(&host, &audit("cimd")).await.unwrap();
        let wider = crate::domain::CimdHost {
            scopes: vec!["tools:call".into(), "files:read".into()],
            ..host.clone()
        };
        s.put_cimd_host(&wider, &audit("cimd")).await.unwrap();
        assert!(s
            .set_cimd_block("https://a.agents.example/c.json", true, 6, &audit("cimd"))
            .await
            .unwrap());
        assert!(!s
            .set_cimd_block("https://a.agents.example/c.json", true, 7, &audit("cimd"))
            .await
            .unwrap());
        let f = s.federation().await.unwrap();
        assert_eq!(f.cimd_hosts, vec![wider]);
        assert_eq!(f.cimd_blocks.len(), 1);
        assert_eq!(f.cimd_blocks[0].created_at, 6);
        assert!(s
            .set_cimd_block("https://a.agents.example/c.json", false, 8, &audit("cimd"))
            .await
            .unwrap());
        assert!(s
            .remove_cimd_host("*.agents.example", &audit("cimd"))
            .await
            .unwrap());
        assert!(!s
            .remove_cimd_host("*.agents.example", &audit("cimd"))
            .await
            .unwrap());
        let f = s.federation().await.unwrap();
        assert!(f.cimd_hosts.is_empty() && f.cimd_blocks.is_empty());
        assert_eq!(f.rules, vec![early.clone(), late.clone()], "oldest first");
        assert!(s
            .remove_federation_rule("fr_a", &audit("fr.rm"))
            .await
            .unwrap());
        assert!(!s
            .remove_federation_rule("fr_a", &audit("fr.rm"))
            .await
            .unwrap());
        // A deleted client takes its rules along; then the issuer goes.
        assert!(s.delete_client("c1", &audit("delete")).await.unwrap());
        assert!(s.federation().await.unwrap().rules.is_empty());
        assert!(s
            .remove_federation_issuer("fi_1", &audit("fi.rm"))
            .await
            .unwrap());
        assert_eq!(s.federation().await.unwrap(), Federation::default());
        let actions: Vec<String> = s
            .list_audit(0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            actions.iter().filter(|a| *a == "fi").count(),
            1,
            "{actions:?}"
        );
        assert_eq!(
            actions.iter().filter(|a| *a == "fr").count(),
            2,
            "{actions:?}"
        );
        assert_eq!(
            actions.iter().filter(|a| *a == "fr.rm").count(),
            1,
            "{actions:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_client_round_trips_without_a_secret() {
    on_each("key clients", async |s| {
        let c = Client {
            auth: ClientAuth::PrivateKeyJwt(KeySource::Jwks(
                serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}),
            )),
            ..client("k1")
        };
        s.create_client(&c, None, &audit("create")).await.unwrap();
        assert_eq!(s.get_client("k1").await.unwrap().unwrap(), c);
        assert!(s.live_secrets("k1", 0).await.unwrap().is_empty());
        let moved = Client {
            auth: ClientAuth::PrivateKeyJwt(KeySource::Uri("https://keys.example.com/jwks".into())),
            ..c.clone()
        };
        assert!(s.update_client(&moved, &audit("update")).await.unwrap());
        assert_eq!(s.get_client("k1").await.unwrap().unwrap(), moved);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_are_idempotent_and_pruned_only_after_expiry() {
    on_each("revocations", async |s| {
        s.revoke_token("old", "c", 100, 50, &audit("revoke"))
            .await
            .unwrap();
        s.revoke_token("old", "c", 100, 51, &audit("revoke"))
            .await
            .unwrap();
        s.revoke_token("live", "c", 1000, 50, &audit("revoke"))
            .await
            .unwrap();
        assert_eq!(s.prune_revocations(500).await.unwrap(), 1);
        assert!(!s.is_token_revoked("old").await.unwrap());
        assert!(s.is_token_revoked("live").await.unwrap());
        assert_eq!(
            s.list_audit(0, 10).await.unwrap().len(),
            2,
            "one entry per new revocation"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_recorded_once_and_retired_once() {
    on_each("signing keys", async |s| {
        let k = SigningKeyRecord::new("kid1", "ES256", 1, 2);
        s.insert_signing_key(&k, None).await.unwrap();
        s.insert_signing_key(&k, Some(&audit("again")))
            .await
            .unwrap();
        assert_eq!(s.signing_keys().await.unwrap(), vec![k]);
        assert!(s
            .retire_signing_key("kid1", 9, &audit("retire"))
            .await
            .unwrap());
        assert!(!s
            .retire_signing_key("kid1", 10, &audit("retire"))
            .await
            .unwrap());
        assert_eq!(s.signing_keys().await.unwrap()[0].retired_at, Some(9));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compromised_key_is_marked_once_and_retired_by_then_at_the_latest() {
    on_each("signing key compromise", async |s| {
        let rec = |kid: &str, retired_at| SigningKeyRecord {
            kid: kid.into(),
            alg: "ES256".into(),
            created_at: 1,
            activates_at: 2,
            retired_at,
            compromised_at: None,
            location: Default::default(),
            public_jwk: None,
        };
        s.insert_signing_key(&rec("live", None), None)
            .await
            .unwrap();
        s.insert_signing_key(&rec("later", Some(500)), None)
            .await
            .unwrap();
        s.insert_signing_key(&rec("earlier", Some(50)), None)
            .await
            .unwrap();
        for kid in ["live", "later", "earlier"] {
            assert!(s
                .compromise_signing_key(kid, 100, &audit("compromise"))
                .await
                .unwrap());
            assert!(!s
                .compromise_signing_key(kid, 200, &audit("compromise"))
                .await
                .unwrap());
        }
        assert!(!s
            .compromise_signing_key("unknown", 100, &audit("compromise"))
            .await
            .unwrap());
        let keys = s.signing_keys().await.unwrap();
        let get = |kid: &str| keys.iter().find(|k| k.kid == kid).unwrap().clone();
        assert_eq!(
            (get("live").retired_at, get("live").compromised_at),
            (Some(100), Some(100))
        );
        assert_eq!(
            get("later").retired_at,
            Some(100),
            "a later retirement is brought forward"
        );
        assert_eq!(get("earlier").retired_at, Some(50), "an earlier one stays");
        assert_eq!(
            s.list_audit(0, 10).await.unwrap().len(),
            3,
            "one entry per compromise"
        );
    })
    .await;
}

/// A copy of the SQLite database in `tests/fixtures/{name}` (in a temporary
/// directory that lives as long as the first value), and its manifest.
fn sqlite_fixture(name: &str) -> (tempfile::TempDir, std::path::PathBuf, serde_json::Value) {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tollgate.db");
    std::fs::copy(fixture.join("tollgate.db"), &db).unwrap();
    let manifest =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("manifest.json")).unwrap())
            .unwrap();
    (dir, db, manifest)
}

/// A SQLite file's `PRAGMA user_version`.
fn user_version(db: &std::path::Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// A SQLite database written by the code before private_key_jwt (schema 2,
/// `tests/fixtures/db-v2`) opens, upgrades to schema 3 and keeps its data:
/// its clients become `client_secret_basic` clients whose secrets still
/// match, and the compromised key stays compromised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_at_schema_2_opens_upgrades_and_keeps_its_data() {
    let (_dir, db, manifest) = sqlite_fixture("db-v2");
    let version = user_version;
    assert_eq!(version(&db), 2, "the fixture is a version-2 database");
    let s = SqliteStore::open(&db).await.unwrap();
    assert_eq!(version(&db), super::sqlite::SCHEMA_VERSION);
    let billing = manifest["billing"]["client_id"].as_str().unwrap();
    let c = s.get_client(billing).await.unwrap().expect("client kept");
    assert_eq!(c.scopes, ["invoices:read", "invoices:write"]);
    assert_eq!(c.auth, ClientAuth::Secret(crate::domain::SecretVia::Basic));
    let secret = crate::secret::SecretString::new(
        manifest["billing"]["client_secret"]
            .as_str()
            .unwrap()
            .into(),
    );
    let live = s.live_secrets(billing, crate::domain::now()).await.unwrap();
    assert!(live.iter().any(|r| r.digest == secret.digest()));
    let admin = manifest["disabled_admin"]["client_id"].as_str().unwrap();
    assert!(s.get_client(admin).await.unwrap().unwrap().disabled);
    let key = crate::secret::SecretString::new(
        manifest["api_key"]["secret_key"].as_str().unwrap().into(),
    );
    assert!(s.find_api_key(&key.digest()).await.unwrap().is_some());
    let revoked = manifest["revoked_api_key"]["id"].as_str().unwrap();
    assert!(s
        .get_api_key(revoked)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(
        keys.len() as u64,
        manifest["signing_keys"].as_u64().unwrap()
    );
    let compromised = manifest["compromised_kid"].as_str().unwrap();
    assert!(keys
        .iter()
        .any(|k| k.kid == compromised && k.compromised_at.is_some()));
    assert_eq!(
        s.list_audit(0, 100).await.unwrap().len() as u64,
        manifest["audit_entries"].as_u64().unwrap()
    );
    // The new table works.
    assert!(s
        .use_once(OneTime::Assertion { client_id: billing }, "j", i64::MAX, 0)
        .await
        .unwrap());
    assert!(!s
        .use_once(OneTime::Assertion { client_id: billing }, "j", i64::MAX, 0)
        .await
        .unwrap());
}

/// A SQLite database written by today's schema (3, `tests/fixtures/db-v3`:
/// a secret client, an inline-key and a `jwks_uri` private_key_jwt client, an
/// API key) opens and keeps its data; the next schema change upgrades it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_at_schema_3_opens_upgrades_and_keeps_its_data() {
    use crate::domain::ClientAuthMethod;
    let (_dir, db, manifest) = sqlite_fixture("db-v3");
    assert_eq!(user_version(&db), 3, "the fixture is a version-3 database");
    let s = SqliteStore::open(&db).await.unwrap();
    assert_eq!(user_version(&db), super::sqlite::SCHEMA_VERSION);
    let billing = manifest["billing"]["client_id"].as_str().unwrap();
    let c = s.get_client(billing).await.unwrap().expect("client kept");
    assert_eq!(c.auth.method(), ClientAuthMethod::ClientSecretBasic);
    let secret = crate::secret::SecretString::new(
        manifest["billing"]["client_secret"]
            .as_str()
            .unwrap()
            .into(),
    );
    let live = s.live_secrets(billing, crate::domain::now()).await.unwrap();
    assert!(live.iter().any(|r| r.digest == secret.digest()));
    let signer = manifest["signer"]["client_id"].as_str().unwrap();
    let c = s
        .get_client(signer)
        .await
        .unwrap()
        .expect("key client kept");
    assert_eq!(
        c.auth,
        ClientAuth::PrivateKeyJwt(KeySource::Jwks(manifest["signer"]["jwks"].clone()))
    );
    assert!(s
        .live_secrets(signer, crate::domain::now())
        .await
        .unwrap()
        .is_empty());
    let fetcher = manifest["fetcher"]["client_id"].as_str().unwrap();
    let c = s
        .get_client(fetcher)
        .await
        .unwrap()
        .expect("uri client kept");
    assert_eq!(
        c.auth,
        ClientAuth::PrivateKeyJwt(KeySource::Uri(
            manifest["fetcher"]["jwks_uri"].as_str().unwrap().into()
        ))
    );
    let key = crate::secret::SecretString::new(
        manifest["api_key"]["secret_key"].as_str().unwrap().into(),
    );
    assert!(s.find_api_key(&key.digest()).await.unwrap().is_some());
    assert_eq!(
        s.signing_keys().await.unwrap().len() as u64,
        manifest["signing_keys"].as_u64().unwrap()
    );
    assert_eq!(
        s.list_audit(0, 100).await.unwrap().len() as u64,
        manifest["audit_entries"].as_u64().unwrap()
    );
    assert!(s
        .use_once(OneTime::Assertion { client_id: signer }, "j", i64::MAX, 0)
        .await
        .unwrap());
    assert!(!s
        .use_once(OneTime::Assertion { client_id: signer }, "j", i64::MAX, 0)
        .await
        .unwrap());
    // Version 4: federation, empty, ready for the kept clients.
    assert_eq!(s.federation().await.unwrap(), Federation::default());
    let i = issuer("fi_1", "https://k8s");
    assert!(s.add_federation_issuer(&i, &audit("fi")).await.unwrap());
    let r = rule("fr_1", "https://k8s", billing, 1);
    assert!(s.add_federation_rule(&r, &audit("fr")).await.unwrap());
    assert_eq!(s.federation().await.unwrap().rules, vec![r]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_at_schema_4_opens_upgrades_and_keeps_its_federation() {
    let (_dir, db, manifest) = sqlite_fixture("db-v4");
    assert_eq!(user_version(&db), 4, "the fixture is a version-4 database");
    let s = SqliteStore::open(&db).await.unwrap();
    assert_eq!(user_version(&db), super::sqlite::SCHEMA_VERSION);
    let id = manifest["client"]["client_id"].as_str().unwrap();
    let secret = crate::secret::SecretString::new(
        manifest["client"]["client_secret"].as_str().unwrap().into(),
    );
    assert!(s
        .live_secrets(id, crate::domain::now())
        .await
        .unwrap()
        .iter()
        .any(|r| r.digest == secret.digest()));
    let f = s.federation().await.unwrap();
    // Schema 9 marks none of them for ID-JAGs; the rest is as written.
    assert!(f.issuers.iter().all(|i| !i.id_jag));
    let mut issuers = serde_json::json!(f.issuers);
    for i in issuers.as_array_mut().unwrap() {
        i.as_object_mut().unwrap().remove("id_jag");
    }
    assert_eq!(issuers, manifest["issuers"]);
    let mut rules = manifest["rules"].as_array().unwrap().clone();
    rules.sort_by_key(|r| (r["created_at"].as_i64(), r["id"].as_str().map(String::from)));
    assert_eq!(serde_json::json!(f.rules), serde_json::json!(rules));
    assert_eq!(
        s.list_audit(0, 100).await.unwrap().len() as u64,
        manifest["audit_entries"].as_u64().unwrap()
    );
    // Versions 5 and 6: the kept client is neither DPoP- nor
    // certificate-bound, and can be made so.
    let mut c = s.get_client(id).await.unwrap().expect("client kept");
    assert!(!c.dpop_bound_access_tokens);
    assert!(!c.tls_client_certificate_bound_access_tokens);
    assert!(!matches!(c.auth, ClientAuth::TlsClientAuth(_)));
    c.dpop_bound_access_tokens = true;
    assert!(s.update_client(&c, &audit("update")).await.unwrap());
    assert!(
        s.get_client(id)
            .await
            .unwrap()
            .unwrap()
            .dpop_bound_access_tokens
    );
    // The rules still go with their client.
    assert!(s.delete_client(id, &audit("delete")).await.unwrap());
    assert!(s.federation().await.unwrap().rules.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_at_schema_6_opens_and_keeps_its_sender_constrained_clients() {
    let (_dir, db, manifest) = sqlite_fixture("db-v6");
    assert_eq!(user_version(&db), 6, "the fixture is a version-6 database");
    let s = SqliteStore::open(&db).await.unwrap();
    assert_eq!(user_version(&db), super::sqlite::SCHEMA_VERSION);
    let id = manifest["dpop"]["client_id"].as_str().unwrap();
    let c = s.get_client(id).await.unwrap().expect("DPoP client kept");
    assert!(c.dpop_bound_access_tokens);
    let secret = crate::secret::SecretString::new(
        manifest["dpop"]["client_secret"].as_str().unwrap().into(),
    );
    assert!(s
        .live_secrets(id, crate::domain::now())
        .await
        .unwrap()
        .iter()
        .any(|r| r.digest == secret.digest()));
    let mesh = manifest["mesh"]["client_id"].as_str().unwrap();
    let c = s.get_client(mesh).await.unwrap().expect("mTLS client kept");
    assert_eq!(
        c.auth,
        ClientAuth::TlsClientAuth(crate::domain::RegisteredName::Uri(
            manifest["mesh"]["san_uri"].as_str().unwrap().into()
        ))
    );
    assert!(c.tls_client_certificate_bound_access_tokens);
    let ss = manifest["self_signed"]["client_id"].as_str().unwrap();
    let c = s
        .get_client(ss)
        .await
        .unwrap()
        .expect("self-signed client kept");
    assert_eq!(
        c.auth,
        ClientAuth::SelfSignedTls(KeySource::Jwks(manifest["self_signed"]["jwks"].clone()))
    );
    let f = s.federation().await.unwrap();
    assert_eq!(
        f.issuers.len() as u64,
        manifest["issuers"].as_u64().unwrap()
    );
    assert_eq!(f.rules.len() as u64, manifest["rules"].as_u64().unwrap());
    assert_eq!(f.rules[0].client_id, mesh);
    // Schema 7 brought the console's sessions.
    s.console()
        .create_login_link(&link("cs_up", 1), &[9; 32], &audit("console.login_link"))
        .await
        .unwrap();
    assert_eq!(s.console().list_sessions().await.unwrap().len(), 1);
}

/// A schema-7 database written by this release (`tests/fixtures/db-v7`):
/// its console links and sessions, and the audit entry a console action
/// left, for the next schema change to upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_at_schema_7_opens_and_keeps_its_console_sessions() {
    let (_dir, db, manifest) = sqlite_fixture("db-v7");
    assert_eq!(user_version(&db), 7, "the fixture is a version-7 database");
    let s = SqliteStore::open(&db).await.unwrap();
    assert_eq!(user_version(&db), super::sqlite::SCHEMA_VERSION);
    let sessions = s.console().list_sessions().await.unwrap();
    assert_eq!(sessions.len(), 2);
    let session = manifest["session"].as_str().unwrap();
    let pending = manifest["pending_link"].as_str().unwrap();
    let opened = sessions.iter().find(|x| x.id == session).unwrap();
    assert!(opened.opened_at.is_some() && opened.revoked_at.is_none());
    let link = sessions.iter().find(|x| x.id == pending).unwrap();
    assert_eq!((link.opened_at, &link.created_by[..]), (None, "cli"));
    let now = crate::domain::now();
    assert_eq!(
        link.state(link.link_expires_at),
        crate::domain::ConsoleSessionState::LinkExpired
    );
    let client_id = manifest["client"]["client_id"].as_str().unwrap();
    let by_console = s
        .console()
        .search_audit(
            &AuditFilter {
                actor: Some(format!("console:{session}")),
                ..AuditFilter::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    let actions: Vec<_> = by_console.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["client.disable", "console.login"]);
    assert_eq!(by_console[0].target.as_deref(), Some(client_id));
    let c = s.get_client(client_id).await.unwrap().unwrap();
    assert!(c.disabled, "disabled through the console");
    assert_eq!(c.token_exchange, None, "schema 8 adds no exchange policy");
    let secret = crate::secret::SecretString::new(
        manifest["client"]["client_secret"].as_str().unwrap().into(),
    );
    assert!(s
        .live_secrets(client_id, now)
        .await
        .unwrap()
        .iter()
        .any(|r| r.digest == secret.digest()));
}

/// A schema-8 database written by this release (`tests/fixtures/db-v8`): a
/// client with a token-exchange policy, for the next schema change to
/// upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_at_schema_8_opens_and_keeps_its_exchange_policy() {
    let (_dir, db, manifest) = sqlite_fixture("db-v8");
    assert_eq!(user_version(&db), 8, "the fixture is a version-8 database");
    let s = SqliteStore::open(&db).await.unwrap();
    assert_eq!(user_version(&db), super::sqlite::SCHEMA_VERSION);
    let id = manifest["client"]["client_id"].as_str().unwrap();
    let c = s.get_client(id).await.unwrap().unwrap();
    let want: crate::domain::ExchangePolicy =
        serde_json::from_value(manifest["token_exchange"].clone()).unwrap();
    assert_eq!(c.token_exchange, Some(want));
    assert!(c.token_exchange.as_ref().unwrap().txn_tokens);
    // Schema 9 marks no issuer for ID-JAGs.
    assert!(s
        .federation()
        .await
        .unwrap()
        .issuers
        .iter()
        .all(|i| !i.id_jag));
    let secret = crate::secret::SecretString::new(
        manifest["client"]["client_secret"].as_str().unwrap().into(),
    );
    assert!(s
        .live_secrets(id, crate::domain::now())
        .await
        .unwrap()
        .iter()
        .any(|r| r.digest == secret.digest()));
}

/// A schema-9 database (`tests/fixtures/db-v9`): a trusted issuer marked
/// for ID-JAGs, a URL clients' host policy and a blocked URL client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_at_schema_9_opens_and_keeps_its_id_jag_issuer() {
    let (_dir, db, manifest) = sqlite_fixture("db-v9");
    assert_eq!(user_version(&db), 9, "the fixture is a version-9 database");
    let s = SqliteStore::open(&db).await.unwrap();
    assert_eq!(user_version(&db), super::sqlite::SCHEMA_VERSION);
    let fed = s.federation().await.unwrap();
    let want = &manifest["issuer"];
    let i = fed
        .issuers
        .iter()
        .find(|i| i.id == want["id"].as_str().unwrap())
        .expect("issuer kept");
    assert_eq!(i.issuer, want["issuer"].as_str().unwrap());
    assert!(i.id_jag);
    assert!(i.jwks.is_some());
    let id = manifest["client"]["client_id"].as_str().unwrap();
    assert!(s.get_client(id).await.unwrap().is_some());
    assert_eq!(
        serde_json::json!(fed.cimd_hosts),
        serde_json::json!([manifest["cimd_host"]])
    );
    assert_eq!(fed.cimd_blocks.len(), 1);
    assert_eq!(
        fed.cimd_blocks[0].url,
        manifest["cimd_block"].as_str().unwrap()
    );
}

/// A schema-10 database (`tests/fixtures/db-v10`): a client with extra
/// claims; its key file's record stays a file key at schema 11.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_at_schema_10_opens_and_keeps_its_client_claims() {
    let (_dir, db, manifest) = sqlite_fixture("db-v10");
    assert_eq!(
        user_version(&db),
        10,
        "the fixture is a version-10 database"
    );
    let s = SqliteStore::open(&db).await.unwrap();
    assert_eq!(user_version(&db), super::sqlite::SCHEMA_VERSION);
    let id = manifest["client"]["client_id"].as_str().unwrap();
    let c = s.get_client(id).await.unwrap().unwrap();
    assert_eq!(
        serde_json::Value::Object(c.claims.expect("claims kept")),
        manifest["claims"]
    );
    let keys = s.signing_keys().await.unwrap();
    assert!(!keys.is_empty());
    assert!(keys
        .iter()
        .all(|k| k.location == crate::domain::KeyLocation::File && k.public_jwk.is_none()));
}

/// A schema-11 database (`tests/fixtures/db-v11`): its signing key is in a
/// PKCS#11 token, and the record keeps the public JWK every instance
/// publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_at_schema_11_opens_and_keeps_its_token_key() {
    let (_dir, db, manifest) = sqlite_fixture("db-v11");
    assert_eq!(
        user_version(&db),
        11,
        "the fixture is a version-11 database"
    );
    let s = SqliteStore::open(&db).await.unwrap();
    assert_eq!(user_version(&db), super::sqlite::SCHEMA_VERSION);
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    let want = &manifest["signing_key"];
    assert_eq!(keys[0].kid, want["kid"].as_str().unwrap());
    assert_eq!(keys[0].alg, "PS256");
    assert_eq!(keys[0].location, crate::domain::KeyLocation::Pkcs11);
    assert_eq!(keys[0].public_jwk.as_ref(), Some(&want["public_jwk"]));
    // The record alone makes a key every instance publishes and verifies
    // with (no module here: it never signs).
    let key = crate::token::keys::token_key(&keys[0], None).unwrap();
    assert_eq!(key.kid, keys[0].kid);
    assert!(!key.can_sign());
    let id = manifest["client"]["client_id"].as_str().unwrap();
    assert!(s.get_client(id).await.unwrap().is_some());
    // Schema 12: no stream yet.
    assert!(s.signals().list_streams().await.unwrap().is_empty());
}

/// A schema-12 database written by this release (`tests/fixtures/db-v12`):
/// a receiver's poll stream with one SET waiting; for the next schema
/// change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_at_schema_12_opens_and_keeps_its_stream_and_events() {
    let (_dir, db, manifest) = sqlite_fixture("db-v12");
    assert_eq!(
        user_version(&db),
        12,
        "the fixture is a version-12 database"
    );
    let s = SqliteStore::open(&db).await.unwrap();
    assert_eq!(user_version(&db), super::sqlite::SCHEMA_VERSION);
    let id = manifest["stream_id"].as_str().unwrap();
    let stream = s
        .signals()
        .get_stream(id)
        .await
        .unwrap()
        .expect("stream kept");
    assert_eq!(stream.delivery, SsfDelivery::Poll);
    assert_eq!(
        stream.client_id,
        manifest["receiver"]["client_id"].as_str().unwrap()
    );
    assert_eq!(stream.status, StreamStatus::Enabled);
    let pending = s.signals().pending_signals(id, 10).await.unwrap();
    assert_eq!(pending.len() as u64, manifest["pending"].as_u64().unwrap());
    assert_eq!(pending[0].set.split('.').count(), 3, "a signed SET");
    assert!(s.signals().signal_cursor().await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_written_by_release_0_1_opens_upgrades_and_keeps_its_data() {
    let (_dir, db, manifest) = sqlite_fixture("db-v1");
    let version = user_version;
    assert_eq!(version(&db), 1, "the fixture is a version-1 database");
    let s = SqliteStore::open(&db).await.unwrap();
    assert_eq!(version(&db), super::sqlite::SCHEMA_VERSION);
    let billing = manifest["billing"]["client_id"].as_str().unwrap();
    let c = s.get_client(billing).await.unwrap().expect("client kept");
    assert_eq!(c.scopes, ["invoices:read", "invoices:write"]);
    let secret = crate::secret::SecretString::new(
        manifest["billing"]["client_secret"]
            .as_str()
            .unwrap()
            .into(),
    );
    let live = s.live_secrets(billing, crate::domain::now()).await.unwrap();
    assert!(
        live.iter().any(|r| r.digest == secret.digest()),
        "secret digest kept"
    );
    let key = crate::secret::SecretString::new(
        manifest["api_key"]["secret_key"].as_str().unwrap().into(),
    );
    let found = s
        .find_api_key(&key.digest())
        .await
        .unwrap()
        .expect("API key kept");
    assert_eq!(found.id, manifest["api_key"]["id"].as_str().unwrap());
    assert!(found.revoked_at.is_none());
    let revoked = s
        .get_api_key(manifest["revoked_api_key"]["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.compromised_at.is_none()));
    assert_eq!(keys.iter().filter(|k| k.retired_at.is_some()).count(), 1);
    assert_eq!(s.list_audit(0, 100).await.unwrap().len(), 8);
    // The new column works, and a second open is a no-op.
    assert!(s
        .compromise_signing_key(&keys[0].kid, 10, &audit("compromise"))
        .await
        .unwrap());
    drop(s);
    let s = SqliteStore::open(&db).await.unwrap();
    assert_eq!(s.signing_keys().await.unwrap()[0].compromised_at, Some(10));
}

/// SQL that empties `schema` and leaves it as migrations 1 to `version`
/// left it, each recorded as applied: an older release's database.
fn schema_at(schema: &str, version: usize) -> String {
    let mut sql = format!(
        "DROP SCHEMA {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path = {schema}; \
         CREATE TABLE tollgate_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         applied_at TIMESTAMPTZ NOT NULL DEFAULT now());"
    );
    for (v, name, migration) in &super::postgres::MIGRATIONS[..version] {
        sql.push_str(migration);
        sql.push_str(&format!(
            "; INSERT INTO tollgate_migrations (version, name) VALUES ({v}, '{name}');"
        ));
    }
    sql
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_database_at_schema_1_upgrades_and_keeps_its_data() {
    let Some((held, first, url)) = postgres("upgrade from schema 1").await else {
        return;
    };
    drop(first);
    let Held::Postgres { schema, .. } = &held else {
        unreachable!()
    };
    // Back to what release 0.1 left: migration 1 only, with its rows.
    pg_exec(
        &url,
        &format!(
            "{} \
             INSERT INTO signing_keys (kid, alg, created_at, activates_at, retired_at) \
             VALUES ('old', 'ES256', 1, 1, 5), ('new', 'ES256', 5, 5, NULL); \
             INSERT INTO clients (id, name, scopes, audiences, created_at, updated_at) \
             VALUES ('tgc_kept', 'kept', 'read', '[]', 1, 1);",
            schema_at(schema, 1)
        ),
    )
    .await
    .unwrap();
    let s = PostgresStore::open(&url, 2).await.unwrap();
    assert!(
        s.get_client("tgc_kept").await.unwrap().is_some(),
        "client kept"
    );
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].retired_at, Some(5));
    assert!(keys.iter().all(|k| k.compromised_at.is_none()));
    // Version 12: keys from before are key files, with no stored JWK; a
    // token key written now reads back whole.
    assert!(keys
        .iter()
        .all(|k| k.location == crate::domain::KeyLocation::File && k.public_jwk.is_none()));
    let token_key = SigningKeyRecord {
        kid: "in-token".into(),
        location: crate::domain::KeyLocation::Pkcs11,
        public_jwk: Some(serde_json::json!({"kty": "EC", "kid": "in-token"})),
        ..keys[1].clone()
    };
    s.insert_signing_key(&token_key, None).await.unwrap();
    assert!(s.signing_keys().await.unwrap().contains(&token_key));
    // Version 13: Shared Signals tables, empty.
    assert!(s.signals().list_streams().await.unwrap().is_empty());
    assert_eq!(s.signals().signal_cursor().await.unwrap(), None);
    assert!(s
        .compromise_signing_key("new", 9, &audit("compromise"))
        .await
        .unwrap());
    let version = pg_exec(
        &url,
        &format!("SELECT max(version)::text FROM {schema}.tollgate_migrations"),
    )
    .await
    .unwrap();
    let want = super::postgres::SCHEMA_VERSION.to_string();
    assert_eq!(version.as_deref(), Some(want.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_database_at_schema_4_upgrades_and_keeps_its_data() {
    let Some((held, first, url)) = postgres("upgrade from schema 4").await else {
        return;
    };
    drop(first);
    let Held::Postgres { schema, .. } = &held else {
        unreachable!()
    };
    // What the previous release left: migrations 1 to 4, with a secret
    // client, a private_key_jwt client and a used assertion.
    let mut sql = schema_at(schema, 4);
    sql.push_str(
        "INSERT INTO clients (id, name, scopes, audiences, created_at, updated_at) \
         VALUES ('tgc_kept', 'kept', 'a b', '[]', 1, 1); \
         INSERT INTO clients (id, name, scopes, audiences, created_at, updated_at, \
         token_endpoint_auth_method, jwks_uri) VALUES ('tgc_keys', 'keys', 'a', '[]', 1, 1, \
         'private_key_jwt', 'https://keys.example.com/jwks'); \
         INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES ('tgc_keys', 'j1', 9999999999);",
    );
    pg_exec(&url, &sql).await.unwrap();
    let s = PostgresStore::open(&url, 2).await.unwrap();
    assert!(s.get_client("tgc_kept").await.unwrap().is_some());
    let keys = s
        .get_client("tgc_keys")
        .await
        .unwrap()
        .expect("key client kept");
    assert_eq!(
        keys.auth,
        ClientAuth::PrivateKeyJwt(KeySource::Uri("https://keys.example.com/jwks".into()))
    );
    assert!(
        !s.use_once(
            OneTime::Assertion {
                client_id: "tgc_keys"
            },
            "j1",
            9_999_999_999,
            0
        )
        .await
        .unwrap(),
        "replay kept"
    );
    assert_eq!(s.federation().await.unwrap(), Federation::default());
    assert!(s
        .add_federation_issuer(&issuer("fi_1", "https://k8s"), &audit("fi"))
        .await
        .unwrap());
    assert!(s
        .add_federation_rule(&rule("fr_1", "https://k8s", "tgc_kept", 1), &audit("fr"))
        .await
        .unwrap());
    let version = pg_exec(
        &url,
        &format!("SELECT max(version)::text FROM {schema}.tollgate_migrations"),
    )
    .await
    .unwrap();
    let want = super::postgres::SCHEMA_VERSION.to_string();
    assert_eq!(version.as_deref(), Some(want.as_str()));
    // Versions 6 and 7: no client is DPoP- or certificate-bound until
    // told so.
    assert!(!keys.dpop_bound_access_tokens);
    assert!(!keys.tls_client_certificate_bound_access_tokens);
    // Version 9: no client may exchange tokens until told so; a policy
    // written now reads back whole. Version 11: nor has extra claims.
    assert_eq!(keys.token_exchange, None);
    assert_eq!(keys.claims, None);
    let mut with_policy = keys.clone();
    with_policy.claims = serde_json::json!({"tenant": "t1"}).as_object().cloned();
    with_policy.token_exchange = Some(crate::domain::ExchangePolicy {
        subject_audiences: vec!["https://orders".into()],
        subject_issuers: vec!["https://k8s".into()],
        txn_tokens: true,
    });
    assert!(s
        .update_client(&with_policy, &audit("client.update"))
        .await
        .unwrap());
    assert_eq!(
        s.get_client(&keys.id)
            .await
            .unwrap()
            .unwrap()
            .token_exchange,
        with_policy.token_exchange
    );

    // Version 8: the console's sessions, next to the audit entries written
    // before it, which its filters find.
    s.console()
        .create_login_link(&link("cs_pg", 1), &[7; 32], &audit("console.login_link"))
        .await
        .unwrap();
    assert_eq!(s.console().list_sessions().await.unwrap().len(), 1);
    let old = s
        .console()
        .search_audit(
            &AuditFilter {
                action: Some("fr".into()),
                ..AuditFilter::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(old.len(), 1);
    // Where pg_trgm can be had (it can on the test server), the client
    // search has its trigram index.
    let available = pg_exec(
        &url,
        "SELECT count(*)::text FROM pg_available_extensions WHERE name = 'pg_trgm'",
    )
    .await
    .unwrap();
    if available.as_deref() == Some("1") {
        let index = pg_exec(
            &url,
            &format!(
                "SELECT indexname::text FROM pg_indexes WHERE schemaname = '{schema}' \
                 AND indexname = 'clients_search_trgm'"
            ),
        )
        .await
        .unwrap();
        assert_eq!(index.as_deref(), Some("clients_search_trgm"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_quotas_follow_the_in_memory_rule_exactly() {
    let (_held, s) = sqlite().await;
    assert!(s.shared_quota().is_none(), "SQLite: in memory");
    let Some((_held, pg, _)) = postgres("quota rule").await else {
        return;
    };
    let quota = pg.shared_quota().expect("PostgreSQL keeps a shared quota");
    let mem: Limiter<String> = Limiter::default();
    // Within a window, over it (ban), during the ban, after it, a new window;
    // and a client without a ban.
    let script: &[(&str, u64, i64, i64, i64)] = &[
        ("a", 3, 60, 30, 0),
        ("a", 3, 60, 30, 1),
        ("a", 3, 60, 30, 2),
        ("a", 3, 60, 30, 3),
        ("a", 3, 60, 30, 10),
        ("a", 3, 60, 30, 40),
        ("a", 3, 60, 30, 61),
        ("a", 3, 60, 30, 62),
        ("b", 1, 10, 0, 0),
        ("b", 1, 10, 0, 5),
        ("b", 1, 10, 0, 6),
        ("b", 1, 10, 0, 10),
    ];
    for &(id, limit, window, ban, now) in script {
        let want = mem.hit(&id.to_string(), limit, window, ban, now);
        let got = quota.hit(id, limit, window, ban, now).await.unwrap();
        assert_eq!(got, want, "{id} at {now}");
    }
    // Pruning forgets finished windows only.
    pg.prune_revocations(1_000).await.unwrap();
    let fresh = quota.hit("a", 3, 60, 30, 1_000).await.unwrap();
    assert_eq!(fresh.remaining, 2);
}

async fn populate(s: &dyn Store) {
    s.create_client(&client("c1"), Some(&[1; 32]), &audit("client.create"))
        .await
        .unwrap();
    s.create_client(&client("c2"), Some(&[2; 32]), &audit("client.create"))
        .await
        .unwrap();
    s.rotate_secret("c1", &[3; 32], 10, 5_000, 5, &audit("rotate"))
        .await
        .unwrap();
    s.create_api_key(&key("k1", "c1", 7), 5, 10, &audit("key"))
        .await
        .unwrap();
    s.create_api_key(&key("k2", "c2", 8), 5, 10, &audit("key"))
        .await
        .unwrap();
    s.revoke_api_key("k2", 20, &audit("key.revoke"))
        .await
        .unwrap();
    s.revoke_token("jti1", "c1", 9_999_999_999, 30, &audit("token.revoke"))
        .await
        .unwrap();
    s.insert_signing_key(&SigningKeyRecord::new("kid1", "ES256", 1, 1), None)
        .await
        .unwrap();
    s.add_federation_issuer(&issuer("fi_1", "https://k8s"), &audit("fi"))
        .await
        .unwrap();
    s.add_federation_rule(&rule("fr_1", "https://k8s", "c1", 4), &audit("fr"))
        .await
        .unwrap();
}

fn assert_same(a: &Dump, b: &Dump) {
    assert_eq!(a.clients, b.clients);
    assert_eq!(a.secrets, b.secrets);
    let keys = |d: &Dump| -> Vec<(String, Vec<u8>, Option<i64>)> {
        d.api_keys
            .iter()
            .map(|k| (k.id.clone(), k.digest.clone(), k.revoked_at))
            .collect()
    };
    assert_eq!(keys(a), keys(b));
    assert_eq!(a.revocations, b.revocations);
    assert_eq!(a.signing_keys, b.signing_keys);
    assert_eq!(a.federation, b.federation);
    assert_eq!(a.audit, b.audit[..a.audit.len()].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_copies_everything_both_ways_and_refuses_a_used_database() {
    let (_h1, src) = sqlite().await;
    populate(src.as_ref()).await;
    let original = src.export().await.unwrap();
    assert_eq!(original.counts().secrets, 3);
    // SQLite to SQLite always; SQLite to PostgreSQL and back when configured.
    let (_h2, dest) = sqlite().await;
    let n = copy(src.as_ref(), dest.as_ref(), &audit("store.migrate"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, original.counts());
    assert_same(&original, &dest.export().await.unwrap());
    assert_eq!(
        copy(src.as_ref(), dest.as_ref(), &audit("store.migrate"))
            .await
            .unwrap(),
        None,
        "a used database is refused"
    );
    if let Some((_h3, pg, _)) = postgres("migration").await {
        copy(src.as_ref(), pg.as_ref(), &audit("store.migrate"))
            .await
            .unwrap()
            .unwrap();
        let on_pg = pg.export().await.unwrap();
        assert_same(&original, &on_pg);
        assert_eq!(on_pg.audit.last().unwrap().action, "store.migrate");
        let (_h4, back) = sqlite().await;
        copy(pg.as_ref(), back.as_ref(), &audit("store.migrate"))
            .await
            .unwrap()
            .unwrap();
        assert_same(&original, &back.export().await.unwrap());
        // New audit entries continue after the copied ones.
        pg.append_audit(&audit("after")).await.unwrap();
        let all = pg.list_audit(0, 100).await.unwrap();
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(all.last().unwrap().action, "after");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_loads_are_one_statement_per_table_on_postgres() {
    // Row by row, each insert fired the change trigger, and a hundred
    // thousand updates of one row in one transaction took minutes.
    let n = 3_000;
    let batch: Vec<(Client, Vec<u8>)> = (0..n)
        .map(|i| (client(&format!("c{i:05}")), vec![(i % 251) as u8; 32]))
        .collect();
    let (_h, src) = sqlite().await;
    src.import_clients(&batch, &audit("client.seed"))
        .await
        .unwrap();
    src.create_api_key(&key("k1", "c00001", 7), 5, 10, &audit("key"))
        .await
        .unwrap();
    src.revoke_token("jti1", "c00002", 9_999_999_999, 30, &audit("revoke"))
        .await
        .unwrap();
    let Some((_held, pg, _)) = postgres("bulk loads").await else {
        return;
    };
    let before = pg.external_change_marker().await.unwrap();
    pg.import_clients(&batch, &audit("client.seed"))
        .await
        .unwrap();
    let seeded = pg.external_change_marker().await.unwrap();
    assert!(
        seeded - before <= 3,
        "seeding {n} clients moved the change version by {}",
        seeded - before
    );
    assert_eq!(
        pg.export().await.unwrap().clients,
        src.export().await.unwrap().clients
    );

    let (_h2, dest, _) = postgres("bulk loads").await.unwrap();
    let before = dest.external_change_marker().await.unwrap();
    let counts = copy(src.as_ref(), dest.as_ref(), &audit("store.migrate"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counts.clients, n);
    assert!(
        dest.external_change_marker().await.unwrap() - before <= 10,
        "a migration is a few statements, not one per row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_through_another_handle_moves_the_change_marker() {
    let dir = tempfile::tempdir().unwrap();
    let a = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    let b = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    let before = a.change_marker();
    b.create_client(&client("c"), Some(&[0; 32]), &audit("create"))
        .await
        .unwrap();
    assert_ne!(a.change_marker(), before, "SQLite: at once");
    let Some((_held, pg, url)) = postgres("change marker").await else {
        return;
    };
    let other = PostgresStore::open(&url, 2).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await; // listener up
                                                                     // Waits for the next notifications to arrive; what they said changed.
    let next = async |from: i64| -> (i64, Vec<Change>) {
        let start = std::time::Instant::now();
        while pg.change_marker() == from {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(1),
                "NOTIFY reached the other handle within a second"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let to = pg.change_marker();
        (to, pg.changes(from, to).expect("logged"))
    };
    let lost = pg.external_change_marker().await.unwrap();
    let at = pg.change_marker();
    other
        .create_client(&client("c"), Some(&[0; 32]), &audit("create"))
        .await
        .unwrap();
    let (at, changes) = next(at).await;
    assert!(!changes.is_empty());
    assert!(
        changes.iter().all(|c| *c == Change::Client("c".into())),
        "the notification names the client: {changes:?}"
    );
    other
        .create_api_key(&key("k", "c", 1), 5, 1, &audit("key"))
        .await
        .unwrap();
    let (at, changes) = next(at).await;
    assert!(
        changes
            .iter()
            .all(|c| matches!(c, Change::ApiKey { id, .. } if id == "k")),
        "{changes:?}"
    );
    other
        .revoke_token("j1", "c", 9_999_999_999, 1, &audit("revoke"))
        .await
        .unwrap();
    let (at, changes) = next(at).await;
    assert_eq!(changes, [Change::Revocation("j1".into())]);
    // Recording a key's last use is not a change a cache must see.
    other.touch_api_keys(&[("k".into(), 99)]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        pg.change_marker(),
        at,
        "no notification for a key's last use"
    );
    // A change made with psql names nothing: caches forget everything.
    pg_exec(&url, "UPDATE clients SET disabled = true WHERE id = 'c'")
        .await
        .unwrap();
    let (_, changes) = next(at).await;
    assert!(changes.contains(&Change::Everything), "{changes:?}");
    // Every notification arrived: the poll reports nothing lost, twice.
    pg.external_change_marker().await.unwrap();
    assert_eq!(pg.external_change_marker().await.unwrap(), lost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let Some((_held, first, url)) = postgres("migrations").await else {
        return;
    };
    drop(first);
    // Start again, three at once, on the same schema: all open, none re-applies.
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::open(&url, 1).await.is_ok() })
        })
        .collect();
    let mut opened = Vec::new();
    for h in handles {
        opened.push(h.await.unwrap());
    }
    assert_eq!(opened, [true, true, true]);
    let s = PostgresStore::open(&url, 1).await.unwrap();
    s.create_client(&client("kept"), Some(&[0; 32]), &audit("create"))
        .await
        .unwrap();
    drop(s);
    let s = PostgresStore::open(&url, 1).await.unwrap();
    assert!(
        s.get_client("kept").await.unwrap().is_some(),
        "reopening keeps data"
    );
    // A database migrated by a newer Tollgate stops this one at start-up.
    pg_exec(
        &url,
        "INSERT INTO tollgate_migrations (version, name) VALUES (99, 'future')",
    )
    .await
    .unwrap();
    match PostgresStore::open(&url, 1).await {
        Err(StoreError::TooNew { found: 99, .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}
