//! A fresh SQLite session store in a temporary directory, migrated and
//! ready, removed when the test drops it.

use std::path::PathBuf;
use std::sync::Arc;

use sessiongate_core::store::Store;
use sessiongate_store::{connect, Database};

/// A store of its own for one test; the directory lives as long as this.
pub struct TempStore {
    pub store: Arc<dyn Store>,
    /// The database file, for a second connection behind the store's back.
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

/// Opens a new SQLite store in a temporary directory.
pub async fn sqlite() -> TempStore {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("sessions.db");
    let store = connect(&Database::Sqlite { path: path.clone() })
        .await
        .expect("an SQLite store");
    TempStore {
        store,
        path,
        _dir: dir,
    }
}
