//! Write-behind for the one thing every poll of a settled gateway changes: when
//! it was last seen, from where, and how it authenticated. Such polls would
//! otherwise each commit a write to a random page of a large table; instead the
//! latest contact per gateway waits here, without text, and `flush` writes them
//! all, in transactions of a few thousand, every few seconds and at shutdown. A
//! crash loses at most that interval of last-contact times, never a report that
//! changed anything.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use crate::app::format_time;
use crate::eui::Eui;
use crate::identity::{Auth, Proof};
use crate::store::{Contact, Store, StoreError};

/// Contacts written per transaction.
const FLUSH_BATCH: usize = 2048;

#[derive(Default)]
pub struct Contacts {
    pending: Mutex<HashMap<Eui, Seen>>,
}

/// A contact as it waits: no text until it is written.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub at: time::OffsetDateTime,
    pub peer: SocketAddr,
    pub proof: Option<Proof>,
}

impl Seen {
    /// A contact of now.
    pub fn now(peer: SocketAddr, proof: Option<Proof>) -> Seen {
        Seen {
            at: time::OffsetDateTime::now_utc(),
            peer,
            proof,
        }
    }

    fn contact(&self) -> Contact {
        Contact {
            at: format_time(self.at),
            peer: self.peer.to_string(),
            auth: Auth(self.proof.as_ref()).to_string(),
        }
    }
}

impl Contacts {
    /// Remembers the latest contact of a gateway.
    pub fn record(&self, gateway: Eui, seen: Seen) {
        self.lock().insert(gateway, seen);
    }

    /// Drops a pending contact: a full report is being written instead.
    pub fn forget(&self, gateway: Eui) {
        self.lock().remove(&gateway);
    }

    /// Writes every pending contact, `FLUSH_BATCH` to a transaction. The map
    /// is swapped out at once (polls never wait for the formatting), and only
    /// one batch at a time exists as text.
    pub async fn flush(&self, store: &Store) -> Result<usize, StoreError> {
        let pending = std::mem::take(&mut *self.lock());
        let n = pending.len();
        let mut rows = pending.into_iter().peekable();
        while rows.peek().is_some() {
            let batch: Vec<(Eui, Contact)> = rows
                .by_ref()
                .take(FLUSH_BATCH)
                .map(|(eui, seen)| (eui, seen.contact()))
                .collect();
            store.record_contacts(batch).await?;
        }
        Ok(n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Eui, Seen>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}
