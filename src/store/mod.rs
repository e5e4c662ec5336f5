//! The embedded SQLite store: opening the database file with the pragmas we rely
//! on, applying the numbered migrations (`PRAGMA user_version`), and running every
//! query on one `store` thread that owns the connection, so the reactor never
//! waits on disk. It also counts the changes a CUPS answer could depend on
//! (`Store::epoch`), so `cups::memo` knows when what it remembers is out of date.
//! Nothing
//! outside this module sees a rusqlite type: callers get plain structs and
//! `StoreError`, so another backend can slot in behind the same functions.

mod audit;
mod aws;
mod blobs;
mod campaigns;
mod console;
mod credentials;
mod devices;
mod fleet;
mod fuota;
mod fuota_devices;
mod gateways;
mod lns;
pub mod tags;
mod tasks;

pub use audit::{AuditEntry, AuditFilter};
pub use aws::{AccessKeyRow, IdempotentAnswer, S3Object};
pub use blobs::{BlobRow, SigningKeyRow};
pub use campaigns::{CampaignGateway, CampaignRow, Candidate, NewCampaign, Progress};
pub use console::FailedTask;
pub use credentials::{
    CredState, Credential, NewCredential, PollContext, PollRecord, Registration,
};
pub use devices::{
    AcceptedUplink, ConfirmedOutcome, DeviceContext, DeviceRow, DownlinkReservation, NonceRule,
    OtaaKeys, ProfileKind, ProfileRow, QueueItem, SessionRow,
};
pub use fleet::{Fleet, FleetCounts, VersionCount};
pub use fuota::{FuotaTaskRow, GroupRow, GroupSession, ProgressRow, RoundRecord, StartRequest};
pub use fuota_devices::FuotaDeviceRow;
pub use gateways::{Contact, CupsReport, Gateway, GatewayPatch, NewGateway, Origin};
pub use lns::LnsState;
pub use tags::Tag;
pub use tasks::{AttemptRow, DefinitionRow, FirmwareContext, TaskRow};

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

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
    include_str!("migrations/0009_campaigns.sql"),
    include_str!("migrations/0010_access_keys.sql"),
    include_str!("migrations/0011_audit.sql"),
    include_str!("migrations/0012_contacts.sql"),
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
    changes: Arc<Changes>,
}

/// The store's change counter: SQLite's update hook bumps it for every row
/// written to a table that a CUPS poll's answer may read, i.e. every table but
/// those in `NOT_READ_BY_POLLS`. Unlisted tables count, so a new table is safe
/// by default: at worst remembered polls are looked up again.
#[derive(Default)]
struct Changes {
    epoch: AtomicU64,
}

/// Tables no CUPS answer depends on, written often by the device and LNS faces
/// (every uplink, every station ping), by the contact write-behind, or by
/// bookkeeping.
const NOT_READ_BY_POLLS: &[&str] = &[
    "cups_contacts",
    "devices",
    "dev_nonces",
    "device_sessions",
    "device_queue",
    "device_events",
    "fuota_progress",
    "fuota_devices",
    "lns_state",
    "audit_log",
    "idempotency",
    "s3_objects",
    "access_keys",
];

impl Changes {
    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn note(&self, table: &str) {
        if !NOT_READ_BY_POLLS.contains(&table) {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }
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
        let changes = Arc::new(Changes::default());
        let counted = changes.clone();
        conn.update_hook(Some(
            move |_: rusqlite::hooks::Action, _: &str, table: &str, _| counted.note(table),
        ));
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
        Ok(Store { jobs, changes })
    }

    /// How many changes to what a CUPS answer may depend on have been written.
    /// Read on the store thread together with the rows (as `poll_context` does),
    /// it says which state those rows are; read anywhere else, it says whether
    /// that state is still the latest.
    pub fn epoch(&self) -> u64 {
        self.changes.epoch()
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

    #[tokio::test]
    async fn contacts_move_out_of_reports_with_nothing_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let mut conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..11] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 11).unwrap();
            let tx = conn.transaction().unwrap();
            tx.execute_batch(
                "INSERT INTO gateways (id, eui, name, created_at) VALUES ('g', -2, 'g', 'x');
                 INSERT INTO gateways (id, eui, name, created_at) VALUES ('never', 3, 'n', 'x');
                 INSERT INTO cups_reports (gateway_id, at, peer, station, model, package, keys,
                     cups_uri, tc_uri, cups_cred_crc, tc_cred_crc, auth)
                 VALUES ('g', '2026-12-01T00:00:00.000Z', '192.0.2.1:4000', '2.0.6', 'rpi',
                     '1.0.0', '[7]', 'https://c', 'wss://l', 11, 12, 'Token generation 1');",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let s = Store::open(&path).unwrap();
        let r = s.gateway("g".into()).await.unwrap().last_report.unwrap();
        assert_eq!(
            (r.at.as_str(), r.peer.as_str(), r.auth.as_str()),
            (
                "2026-12-01T00:00:00.000Z",
                "192.0.2.1:4000",
                "Token generation 1"
            )
        );
        assert_eq!(
            (r.station.as_str(), r.package.as_deref()),
            ("2.0.6", Some("1.0.0"))
        );
        assert_eq!((r.keys, r.cups_cred_crc, r.tc_cred_crc), (vec![7], 11, 12));
        assert_eq!(r.cups_uri.as_deref(), Some("https://c"));
        assert!(s
            .gateway("never".into())
            .await
            .unwrap()
            .last_report
            .is_none());
        let f = s
            .fleet("2026-11-30T00:00:00.000Z".into(), 10)
            .await
            .unwrap();
        assert_eq!((f.gateways, f.never_polled), (2, 1));
        assert_eq!((f.versions[0].gateways, f.versions[0].online), (1, 1));
    }

    #[tokio::test]
    async fn the_epoch_counts_writes_polls_read_and_not_contact_times() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let exec = |sql: &'static str| {
            s.run(move |c| {
                c.execute_batch(sql)?;
                Ok(())
            })
        };
        let e0 = s.epoch();
        exec(
            "INSERT INTO gateways (id, eui, name, created_at) VALUES ('g', 7, 'g', 'x');
             INSERT INTO cups_reports (gateway_id, eui, station, model, keys,
                 cups_cred_crc, tc_cred_crc)
             VALUES ('g', 7, 's', 'm', '[]', 0, 0);
             INSERT INTO cups_contacts (eui, at, peer, auth)
             VALUES (7, '2026-01-01T00:00:00.000Z', 'p', 'a');",
        )
        .await
        .unwrap();
        assert_eq!(s.epoch(), e0 + 2, "a new gateway and its report");
        let contact = gateways::Contact {
            at: "2026-01-02T00:00:00.000Z".into(),
            peer: "q".into(),
            auth: "b".into(),
        };
        s.record_contacts(vec![(crate::eui::Eui(7), contact)])
            .await
            .unwrap();
        let at: String = s
            .run(|c| Ok(c.query_row("SELECT at FROM cups_contacts", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(at, "2026-01-02T00:00:00.000Z", "the contact was written");
        assert_eq!(s.epoch(), e0 + 2, "contact times change no answer");
        exec("UPDATE cups_reports SET station = 't'").await.unwrap();
        assert_eq!(s.epoch(), e0 + 3, "a report written by a poll counts");
        exec("DELETE FROM gateways").await.unwrap();
        assert_eq!(s.epoch(), e0 + 5, "the gateway and, by cascade, its report");
        let left: i64 = s
            .run(|c| Ok(c.query_row("SELECT count(*) FROM cups_contacts", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(left, 0, "its contact went with it");
        let changes = Changes::default();
        for table in NOT_READ_BY_POLLS {
            changes.note(table);
        }
        assert_eq!(changes.epoch(), 0);
        changes.note("a_table_added_later");
        assert_eq!(changes.epoch(), 1, "unlisted tables count");
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
