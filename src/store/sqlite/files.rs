//! The files beside a SQLite database: the shared change counter
//! (`<db>-changes`) and private file modes for the database and its companions.

use std::path::Path;
use std::sync::atomic::Ordering;

use super::*;

/// A counter shared by every process that uses the database, in a small
/// memory-mapped file beside it (`<db>-changes`). Every committed write bumps
/// it; readers compare it with one atomic load: no system call and no SQLite
/// call, so a cache can be checked for freshness on an async worker.
pub(super) struct ChangeCounter {
    map: memmap2::MmapRaw,
}

impl ChangeCounter {
    pub(super) fn open(db: &Path) -> std::io::Result<ChangeCounter> {
        let path = PathBuf::from(format!("{}-changes", db.display()));
        let file = private_file(&path)?;
        if file.metadata()?.len() < 8 {
            file.set_len(8)?;
        }
        let map = memmap2::MmapRaw::map_raw(&file)?;
        // Checked after mapping: another process may have truncated the file
        // between `set_len` and the mapping.
        if map.len() < 8 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the change counter file is shorter than 8 bytes",
            ));
        }
        Ok(ChangeCounter { map })
    }

    /// The one `unsafe` in Tollgate (the crate denies it elsewhere).
    #[allow(unsafe_code)]
    pub(super) fn counter(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned and at least 8 bytes long
        // (checked in `open`), lives as long as `self`, and is only ever
        // accessed as one AtomicU64, which has the size and alignment of u64.
        // Atomic operations on a shared mapping are coherent across
        // processes on the platforms Tollgate runs on.
        unsafe { &*(self.map.as_ptr() as *const AtomicU64) }
    }

    /// Moves the counter on; its new value.
    pub(super) fn bump(&self) -> i64 {
        self.counter().fetch_add(1, Ordering::SeqCst) as i64 + 1
    }

    pub(super) fn get(&self) -> i64 {
        self.counter().load(Ordering::SeqCst) as i64
    }
}

/// Opens (creating if needed) a file readable and writable by its owner
/// only (0600), whatever the umask, and tightens an existing one: the
/// database holds digests and the audit log, which are nobody else's.
pub(super) fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if file.metadata()?.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(file)
}

/// Makes the database file and its companions private before SQLite opens
/// them. SQLite creates `-wal` and `-shm` with the mode of the database
/// file, so a private database keeps them private; ones left by an older
/// release are tightened here.
pub(super) fn make_private(db: &Path) -> std::io::Result<()> {
    private_file(db)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let companion = PathBuf::from(format!("{}{suffix}", db.display()));
        if companion.exists() {
            private_file(&companion)?;
        }
    }
    Ok(())
}
