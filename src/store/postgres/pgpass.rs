//! libpq's password sources for a PostgreSQL URL that carries none:
//! `PGPASSWORD`, then the password file (`PGPASSFILE`, or `~/.pgpass`), as
//! the PostgreSQL manual describes them ("The Password File"), so the
//! password can stay out of `TOLLGATE_DB` and the TOML file.

use std::path::{Path, PathBuf};

use tokio_postgres::config::Host;

/// The password libpq would use for `config`, if the URL has none; `env`
/// reads an environment variable (`std::env::var` outside tests).
pub(super) fn password_for(
    config: &tokio_postgres::Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Vec<u8>> {
    if config.get_password().is_some() {
        return None;
    }
    if let Some(p) = env("PGPASSWORD").filter(|p| !p.is_empty()) {
        return Some(p.into_bytes());
    }
    let file = match env("PGPASSFILE").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env("HOME")?).join(".pgpass"),
    };
    let text = readable(&file)?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        // libpq matches a Unix socket against "localhost".
        _ => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    lookup(&text, [&host, &port, db, user]).map(String::into_bytes)
}

/// The file's text, unless it is missing or others may read it (libpq then
/// ignores it with a warning; so do we).
fn readable(file: &Path) -> Option<String> {
    let meta = std::fs::metadata(file).ok().filter(|m| m.is_file())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            log::warn!(
                "password file {} has group or world access; ignored (chmod 0600 it)",
                file.display()
            );
            return None;
        }
    }
    std::fs::read_to_string(file).ok()
}

/// The password of the first line whose host, port, database and user each
/// equal `want` or are `*`. Fields are separated by `:`; `\:` and `\\` stand
/// for themselves; lines starting with `#` are comments.
fn lookup(text: &str, want: [&str; 4]) -> Option<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(fields)
        .find(|f| {
            f[..4]
                .iter()
                .zip(want)
                .all(|(have, want)| have == "*" || have == want)
        })
        .map(|mut f| f.swap_remove(4))
}

/// A line's five fields, unescaped, or `None` if it has fewer.
fn fields(line: &str) -> Option<Vec<String>> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.last_mut()?.extend(chars.next()),
            ':' if out.len() < 5 => out.push(String::new()),
            c => out.last_mut()?.push(c),
        }
    }
    (out.len() == 5).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const FILE: &str = "\
# host:port:database:user:password
db.internal:5432:tollgate:tollgate:first
*:*:*:tollgate:any\\:host\\\\x
short:line
other:5433:*:*:other
";

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let find = |w: [&str; 4]| lookup(FILE, w);
        assert_eq!(
            find(["db.internal", "5432", "tollgate", "tollgate"]).as_deref(),
            Some("first")
        );
        assert_eq!(
            find(["db.internal", "5433", "tollgate", "tollgate"]).as_deref(),
            Some("any:host\\x")
        );
        assert_eq!(find(["other", "5433", "x", "y"]).as_deref(), Some("other"));
        assert_eq!(find(["other", "5432", "x", "y"]), None);
        assert_eq!(find(["short", "line", "", ""]), None);
    }

    fn with_file(mode: u32) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, FILE).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let path = path.display().to_string();
        (dir, path)
    }

    #[test]
    fn the_url_then_pgpassword_then_a_private_password_file() {
        let config = |url: &str| url.parse::<tokio_postgres::Config>().unwrap();
        let (_dir, file) = with_file(0o600);
        let env = |vars: &[(&str, &str)]| {
            let vars: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move |k: &str| vars.get(k).cloned()
        };
        let url = "postgres://tollgate@db.internal/tollgate";
        let from_file = env(&[("PGPASSFILE", &file)]);
        assert_eq!(
            password_for(&config(url), &from_file),
            Some(b"first".to_vec())
        );
        // The database defaults to the user name, the port to 5432.
        assert_eq!(
            password_for(&config("postgres://tollgate@db.internal"), &from_file),
            Some(b"first".to_vec())
        );
        let both = env(&[("PGPASSFILE", &file), ("PGPASSWORD", "fromenv")]);
        assert_eq!(password_for(&config(url), &both), Some(b"fromenv".to_vec()));
        let in_url = "postgres://tollgate:inurl@db.internal/tollgate";
        assert_eq!(password_for(&config(in_url), &both), None, "the URL wins");
        assert_eq!(
            password_for(&config("postgres://nobody@elsewhere/x"), &from_file),
            None
        );
        // ~/.pgpass when PGPASSFILE is unset.
        let home = std::path::Path::new(&file).parent().unwrap();
        std::fs::copy(&file, home.join(".pgpass")).unwrap();
        let from_home = env(&[("HOME", &home.display().to_string())]);
        assert_eq!(
            password_for(&config(url), &from_home),
            Some(b"first".to_vec())
        );
        assert_eq!(password_for(&config(url), &env(&[])), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_password_file_others_can_read_is_ignored() {
        let (_dir, file) = with_file(0o644);
        let config = "postgres://tollgate@db.internal/tollgate".parse().unwrap();
        let env = move |k: &str| (k == "PGPASSFILE").then(|| file.clone());
        assert_eq!(password_for(&config, &env), None);
    }
}
