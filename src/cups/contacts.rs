//! Write-behind for the one thing every poll of a settled gateway changes: when
//! it was last seen, from where, and how it authenticated. Such polls would
//! otherwise each commit a write to a random page of a large table; instead the
//! latest contact per gateway waits here and `flush` writes them all in one
//! transaction every few seconds and at shutdown. A crash loses at most that
//! interval of last-contact times, never a report that changed anything.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::eui::Eui;
use crate::store::{Contact, Store, StoreError};

#[derive(Default)]
pub struct Contacts {
    pending: Mutex<HashMap<Eui, Contact>>,
}

impl Contacts {
    /// Remembers the latest contact of a gateway.
    pub fn record(&self, gateway: Eui, c: Contact) {
        self.lock().insert(gateway, c);
    }

    /// Drops a pending contact: a full report is being written instead.
    pub fn forget(&self, gateway: Eui) {
        self.lock().remove(&gateway);
    }

    /// Writes every pending contact in one transaction.
    pub async fn flush(&self, store: &Store) -> Result<usize, StoreError> {
        let batch: Vec<(Eui, Contact)> = self.lock().drain().collect();
        let n = batch.len();
        if n > 0 {
            store.record_contacts(batch).await?;
        }
        Ok(n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Eui, Contact>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}
