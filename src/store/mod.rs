//! The embedded SQLite store: opening the database file with the pragmas we rely
//! on, applying the numbered migrations (`PRAGMA user_version`), and running every
//! query on one `store` thread that owns the connection, so the reactor never
//! waits on disk. Nothing
//! outside this module sees a rusqlite type: callers get plain structs and
//! `StoreError`, so another backend can slot in behind the same functions.

mod blobs;
mod credentials;
mod devices;
mod fuota;
mod fuota_devices;
mod gateways;
mod lns;
pub mod tags;
mod tasks;

pub use blobs::{BlobRow, SigningKeyRow};
pub use credentials::{
    CredState, Credential, NewCredential, PollContext, PollRecord, Registration,
};
pub use devices::{
    AcceptedUplink, ConfirmedOutcome, DeviceContext, DeviceRow, DownlinkReservation, NonceRule,
    OtaaKeys, ProfileKind, ProfileRow, QueueItem, SessionRow,
};
pub use fuota::{FuotaTaskRow, GroupRow, GroupSession, ProgressRow, RoundRecord, StartRequest};
pub use fuota_devices::FuotaDeviceRow;
pub use gateways::{Contact, CupsReport, Gateway, GatewayPatch, NewGateway, Origin};
pub use lns::LnsState;
pub use tags::Tag;
pub use tasks::{AttemptRow, DefinitionRow, FirmwareContext, TaskRow};

use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;

/// Numbered migrations, applied in order; the database's `user_version` says how
/// many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_firmware.sql"),
    include_str!("migrations/0003_lns.sql"),
    include_str!("migrations/0004_fuota.sql"),
    include_str!("migrations/0005_devices.sql"),
    include_str!("migrations/0006_registration.sql"),
    include_str!("migrations/0007_tags.sql"),
    include_str!("migrations/0008_fuota_devices.sql"),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request names something that cannot be used (the message says why).
    #[error("{0}")]
    Invalid(String),
    /// What a write was planned from changed before it ran (another request
    /// won the race); load again and re-plan.
    #[error("changed concurrently: {0}")]
    Stale(String),
    #[error("database error: {0}")]
    Db(String),
    #[error("database file is from a newer stationkeeper (schema {found}, this build knows {known}); upgrade stationkeeper")]
    TooNew { found: i64, known: usize },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        match &e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
            rusqlite::Error::SqliteFailure(f, msg)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Conflict(msg.clone().unwrap_or_else(|| e.to_string()))
            }
            _ => StoreError::Db(e.to_string()),
        }
    }
}

/// A handle to the database; cheap to clone. Queries queue up for the one thread
/// that owns the connection, and callers await their answer: under load the
/// waiting is done by async tasks, not by blocking-pool threads parked on a
/// mutex whose holder gets preempted among them (benches/README.md, "Devices").
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
}

/// One query for the store thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

impl Store {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // The database holds credential blobs (tokens, client keys): owner-only,
        // set before WAL so the -wal and -shm files inherit the mode.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| StoreError::Db(format!("{}: {e}", path.display())))?;
        }
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| StoreError::Db(format!("{}: {e}", path.display())))?;
        }
        let mut conn = Connection::open(path)?;
        // WAL keeps readers off the writer's back; NORMAL is durable across process
        // crashes (the WAL is fsynced at checkpoints), which is what a kill -9 needs.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // 8 MiB of page cache (the default is 2): a CUPS poll touches a handful of
        // B-tree paths, and with 100,000 gateways they no longer fit in 2 MiB.
        conn.pragma_update(None, "cache_size", -8192)?;
        migrate(&mut conn)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        // The thread ends when the last Store handle is dropped.
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                for job in queue {
                    job(&mut conn);
                }
            })
            .map_err(|e| StoreError::Db(format!("cannot start the store thread: {e}")))?;
        Ok(Store { jobs })
    }

    /// Runs `f` with the connection on the store thread.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |c: &mut Connection| {
            // A panic leaves the connection usable (SQLite rolls back an open
            // transaction when it is dropped) and the thread running; the caller
            // sees its answer channel closed.
            if let Ok(r) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c))) {
                let _ = tx.send(r);
            }
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Db("the store thread has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Db("store task failed (it panicked)".into()))?
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > MIGRATIONS.len() as i64 {
        return Err(StoreError::TooNew {
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(migration = i + 1, "database migrated");
    }
    Ok(())
}

/// EUIs are u64; SQLite integers are i64. Store the bit pattern.
fn eui_to_sql(eui: crate::eui::Eui) -> i64 {
    eui.0 as i64
}

fn eui_from_sql(v: i64) -> crate::eui::Eui {
    crate::eui::Eui(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_reopen_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        drop(Store::open(&path).unwrap());
        let _store = Store::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(Store::open(&path), Err(StoreError::TooNew { .. })));
    }
}
