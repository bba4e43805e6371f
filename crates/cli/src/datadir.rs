//! The data directory a server owns: created private, and locked for as long
//! as the server runs, so a second server cannot serve (and expire) the
//! sessions of the first.
//!
//! The lock is an advisory `flock` on `<data dir>/sessiongate.lock`, which
//! holds the owner's pid, and on `<database file>.lock` beside an SQLite
//! database wherever it lives, so two data directories cannot share one
//! SQLite file either. The operating system drops both when the process
//! ends, even by `kill -9`. The data directory is locked with PostgreSQL
//! too, as it holds the admin token and the reconnect and request-state
//! keys; servers with data directories of their own on one PostgreSQL
//! database are not stopped (several nodes sharing a database is a
//! capability still to come).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use sessiongate_store::Database;

use crate::config::Config;

/// The data directory's lock file.
pub const LOCK_FILE: &str = "sessiongate.lock";

/// Why a server cannot have its data directory.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "another sessiongate (pid {pid}) is using {what} ({} is locked); \
         stop it first, or give this server another data directory or database",
        .lock.display()
    )]
    Locked {
        /// The data directory or the database, for the message.
        what: String,
        lock: PathBuf,
        /// As the holder wrote it; `unknown` if it had not yet.
        pid: String,
    },
    #[error("cannot create the directory {}: {source}", .path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot lock {}: {source}", .path.display())]
    Lock { path: PathBuf, source: io::Error },
}

/// The locks of a running server; dropping it releases them.
#[derive(Debug)]
pub struct DataDirLock {
    _files: Vec<File>,
}

/// Creates the data directory (private) if missing, warns if an existing one
/// is open to other users, and locks it and the SQLite database.
pub fn acquire(config: &Config) -> Result<DataDirLock, DataDirError> {
    let dir = &config.data_dir;
    create_private_dir(dir)?;
    warn_if_open_to_others(dir);
    let what = format!("the data directory {}", dir.display());
    let mut files = vec![lock(what, &dir.join(LOCK_FILE))?];
    if let Database::Sqlite { path } = &config.database {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent)?;
        }
        let mut lock_file = path.clone().into_os_string();
        lock_file.push(".lock");
        let what = format!("the SQLite database {}", path.display());
        files.push(lock(what, Path::new(&lock_file))?);
    }
    Ok(DataDirLock { _files: files })
}

/// Takes the exclusive lock on `path` and writes our pid into it, or names
/// the pid of the server that holds it.
fn lock(what: String, path: &Path) -> Result<File, DataDirError> {
    let io_err = |source| DataDirError::Lock {
        path: path.to_path_buf(),
        source,
    };
    let mut file = open_private(path).map_err(io_err)?;
    // Qualified: std's inherent `File::try_lock` (Rust 1.89) is newer than
    // the workspace's minimum Rust.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(DataDirError::Locked {
                what,
                lock: path.to_path_buf(),
                pid: if pid.is_empty() { "unknown" } else { pid }.to_string(),
            });
        }
        Err(fs4::TryLockError::Error(e)) => return Err(io_err(e)),
    }
    file.set_len(0).map_err(io_err)?;
    file.rewind().map_err(io_err)?;
    writeln!(file, "{}", std::process::id()).map_err(io_err)?;
    Ok(file)
}

fn create_private_dir(path: &Path) -> Result<(), DataDirError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(|source| DataDirError::Create {
        path: path.to_path_buf(),
        source,
    })
}

fn open_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(unix)]
fn warn_if_open_to_others(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(dir) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %dir.display(),
                "the data directory is accessible to other users, and its files hold session \
                 ids and keys; chmod 700 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_open_to_others(_dir: &Path) {}
