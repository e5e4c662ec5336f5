//! Credential generations per gateway and service, and the one transaction that
//! records a CUPS poll (report, confirmations, retirements) atomically.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::gateways::{self, CupsReport, Gateway};
use super::tasks::{self, FirmwareContext};
use super::{Store, StoreError};
use crate::eui::Eui;
use crate::firmware::task::{Change, Version};
use crate::identity::{CredKind, Service};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredState {
    Current,
    Previous,
    Retired,
}

impl CredState {
    fn parse(s: &str) -> CredState {
        match s {
            "current" => CredState::Current,
            "previous" => CredState::Previous,
            _ => CredState::Retired,
        }
    }
}

/// One stored generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub gateway_id: String,
    pub service: Service,
    pub generation: u32,
    pub kind: CredKind,
    pub blob: Vec<u8>,
    pub blob_crc: u32,
    pub cert_sha256: Option<String>,
    pub token_sha256: Option<String>,
    pub state: CredState,
    pub backup: bool,
    pub created_at: String,
    pub confirmed_at: Option<String>,
}

/// A generation about to be issued; the store numbers it.
#[derive(Debug, Clone)]
pub struct NewCredential {
    pub gateway_id: String,
    pub service: Service,
    pub kind: CredKind,
    pub blob: Vec<u8>,
    pub cert_sha256: Option<String>,
    pub token_sha256: Option<String>,
    pub created_at: String,
}

/// Everything one poll changes, written in one transaction.
#[derive(Debug, Clone)]
pub struct PollRecord {
    pub gateway_id: String,
    pub report: CupsReport,
    /// Generations the gateway now reports holding (its CRC matched).
    pub confirmed: Vec<(Service, u32)>,
    /// The generation that authenticated this poll, if this is the gateway's first
    /// successful poll with one: station's one-time cups-bak copy holds it.
    pub backup: Option<(Service, u32)>,
    /// Task status changes the poll decided.
    pub tasks: Vec<Change>,
    /// Size of the answer, recorded with a delivery attempt.
    pub bytes_total: u64,
}

/// Everything a poll needs to load, in one read.
#[derive(Debug, Clone)]
pub struct PollContext {
    pub gateway: Gateway,
    pub credentials: Vec<Credential>,
    pub firmware: FirmwareContext,
    /// `Store::epoch` when these rows were read.
    pub epoch: u64,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Credential> {
    let service: String = r.get(1)?;
    let kind: String = r.get(3)?;
    let state: String = r.get(8)?;
    Ok(Credential {
        gateway_id: r.get(0)?,
        service: Service::parse(&service).unwrap_or(Service::Cups),
        generation: r.get(2)?,
        kind: CredKind::parse(&kind).unwrap_or(CredKind::Token),
        blob: r.get(4)?,
        blob_crc: r.get(5)?,
        cert_sha256: r.get(6)?,
        token_sha256: r.get(7)?,
        state: CredState::parse(&state),
        backup: r.get(9)?,
        created_at: r.get(10)?,
        confirmed_at: r.get(11)?,
    })
}

fn for_gateway(c: &Connection, gateway_id: &str) -> Result<Vec<Credential>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT gateway_id, service, generation, kind, blob, blob_crc, cert_sha256,
                token_sha256, state, backup, created_at, confirmed_at
         FROM credentials WHERE gateway_id = ?1 ORDER BY service, generation",
    )?;
    let rows = stmt.query_map([gateway_id], from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn insert(c: &mut Connection, n: &NewCredential) -> Result<u32, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let last: Option<u32> = tx
        .query_row(
            "SELECT MAX(generation) FROM credentials WHERE gateway_id = ?1 AND service = ?2",
            params![n.gateway_id, n.service.as_str()],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let generation = last.unwrap_or(0) + 1;
    tx.execute(
        "UPDATE credentials SET state = 'previous'
         WHERE gateway_id = ?1 AND service = ?2 AND state = 'current'",
        params![n.gateway_id, n.service.as_str()],
    )?;
    tx.execute(
        "INSERT INTO credentials (gateway_id, service, generation, kind, blob, blob_crc,
             cert_sha256, token_sha256, state, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'current', ?9)",
        params![
            n.gateway_id,
            n.service.as_str(),
            generation,
            n.kind.as_str(),
            n.blob,
            crc32fast::hash(&n.blob),
            n.cert_sha256,
            n.token_sha256,
            n.created_at
        ],
    )?;
    tx.commit()?;
    Ok(generation)
}

fn record_poll(c: &mut Connection, p: &PollRecord) -> Result<Option<i64>, StoreError> {
    // IMMEDIATE takes the write lock first, so another process sharing the
    // database cannot slip a write between this poll's checks and its writes.
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let attempt = tasks::apply_changes(&tx, &p.gateway_id, &p.tasks, &p.report.at, p.bytes_total)?;
    gateways::upsert_report(&tx, &p.gateway_id, &p.report)?;
    for (service, generation) in &p.confirmed {
        tx.prepare_cached(
            "UPDATE credentials SET confirmed_at = COALESCE(confirmed_at, ?4)
             WHERE gateway_id = ?1 AND service = ?2 AND generation = ?3",
        )?
        .execute(params![
            p.gateway_id,
            service.as_str(),
            generation,
            p.report.at
        ])?;
        // The gateway holds the new generation: older ones stop working, except the
        // one in its cups-bak set (see the table comment in 0001_init.sql).
        tx.prepare_cached(
            "UPDATE credentials SET state = 'retired'
             WHERE gateway_id = ?1 AND service = ?2 AND generation < ?3 AND state != 'retired'",
        )?
        .execute(params![p.gateway_id, service.as_str(), generation])?;
        if *service == Service::Cups {
            tx.prepare_cached(
                "UPDATE gateways SET awaiting_confirmation = 0 WHERE id = ?1 AND awaiting_confirmation = 1",
            )?
            .execute(params![p.gateway_id])?;
        }
    }
    if let Some((service, generation)) = &p.backup {
        tx.prepare_cached(
            "UPDATE credentials SET backup = 1
             WHERE gateway_id = ?1 AND service = ?2 AND generation = ?3
               AND NOT EXISTS (SELECT 1 FROM credentials
                               WHERE gateway_id = ?1 AND service = ?2 AND backup = 1)",
        )?
        .execute(params![p.gateway_id, service.as_str(), generation])?;
    }
    tx.commit()?;
    Ok(attempt)
}

/// Deletes one generation that is not current, once the current one of its
/// service is confirmed (the gateway then holds something that works).
fn delete(
    c: &mut Connection,
    gateway_id: &str,
    service: Service,
    generation: u32,
) -> Result<(), StoreError> {
    let tx = c.transaction()?;
    let state: String = tx.query_row(
        "SELECT state FROM credentials WHERE gateway_id = ?1 AND service = ?2 AND generation = ?3",
        params![gateway_id, service.as_str(), generation],
        |r| r.get(0),
    )?;
    if state == "current" {
        return Err(StoreError::Conflict(format!(
            "{} generation {generation} is the current one; issue a new generation, let the gateway confirm it, then delete this one",
            service.as_str()
        )));
    }
    let confirmed: bool = tx.query_row(
        "SELECT COUNT(*) > 0 FROM credentials
         WHERE gateway_id = ?1 AND service = ?2 AND state = 'current' AND confirmed_at IS NOT NULL",
        params![gateway_id, service.as_str()],
        |r| r.get(0),
    )?;
    if !confirmed {
        return Err(StoreError::Conflict(format!(
            "the gateway has not confirmed its current {} generation yet; generation {generation} may be all it holds. Wait for its next poll",
            service.as_str()
        )));
    }
    tx.execute(
        "DELETE FROM credentials WHERE gateway_id = ?1 AND service = ?2 AND generation = ?3",
        params![gateway_id, service.as_str(), generation],
    )?;
    tx.commit()?;
    Ok(())
}

impl Store {
    /// Deletes a generation that is not current (the backup one too): its token
    /// and certificate stop working at once.
    pub async fn delete_credential(
        &self,
        gateway_id: String,
        service: Service,
        generation: u32,
    ) -> Result<(), StoreError> {
        self.run(move |c| delete(c, &gateway_id, service, generation))
            .await
    }

    /// The gateway with this EUI, its credential generations, its open task and
    /// the definitions matching `reported`: everything a poll decides on.
    pub async fn poll_context(
        &self,
        eui: Eui,
        reported: Version,
    ) -> Result<Option<PollContext>, StoreError> {
        let changes = self.changes.clone();
        self.run(move |c| {
            // One read transaction for the four statements: one consistent
            // snapshot, and the WAL read lock taken once instead of per statement.
            let epoch = changes.epoch();
            let tx = c.transaction()?;
            let Some(gateway) = gateways::by_eui(&tx, eui)? else {
                return Ok(None);
            };
            let credentials = for_gateway(&tx, &gateway.gw.id)?;
            let firmware = tasks::firmware_context(&tx, &gateway.gw.id, &reported)?;
            tx.commit()?;
            Ok(Some(PollContext {
                gateway,
                credentials,
                firmware,
                epoch,
            }))
        })
        .await
    }

    pub async fn credentials(&self, gateway_id: String) -> Result<Vec<Credential>, StoreError> {
        self.run(move |c| for_gateway(c, &gateway_id)).await
    }

    /// Stores a new current generation; the old current one becomes `previous`.
    pub async fn issue_credential(&self, n: NewCredential) -> Result<u32, StoreError> {
        self.run(move |c| insert(c, &n)).await
    }

    /// Records a poll atomically; returns the delivery attempt's id, if any.
    /// `StoreError::Stale` when the poll's task changes no longer apply (another
    /// poll moved the task first): nothing was written; re-plan.
    pub async fn record_poll(&self, p: PollRecord) -> Result<Option<i64>, StoreError> {
        self.run(move |c| record_poll(c, &p)).await
    }

    /// Registers a gateway for open registration (unknown = "register"), in one
    /// transaction: a concurrent first poll that registered the EUI first is no
    /// error (its row is returned), and at `max_unconfirmed` gateways that open
    /// registration created and that never confirmed a CUPS generation, nothing
    /// is inserted.
    pub async fn register_gateway(
        &self,
        g: gateways::NewGateway,
        max_unconfirmed: u64,
    ) -> Result<Registration, StoreError> {
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(gw) = gateways::by_eui(&tx, g.eui)? {
                return Ok(Registration::AlreadyThere(gw));
            }
            let unconfirmed: u64 = tx.query_row(
                "SELECT COUNT(*) FROM gateways WHERE awaiting_confirmation = 1",
                [],
                |r| r.get(0),
            )?;
            if unconfirmed >= max_unconfirmed {
                return Ok(Registration::Full { unconfirmed });
            }
            gateways::insert(&tx, &g)?;
            tx.execute(
                "UPDATE gateways SET awaiting_confirmation = 1 WHERE eui = ?1",
                params![super::eui_to_sql(g.eui)],
            )?;
            let gw = gateways::by_eui(&tx, g.eui)?.ok_or(StoreError::NotFound)?;
            tx.commit()?;
            Ok(Registration::Created(gw))
        })
        .await
    }
}

/// What open registration of one EUI did.
#[derive(Debug, Clone)]
pub enum Registration {
    Created(Gateway),
    /// Another poll registered it first.
    AlreadyThere(Gateway),
    /// `[gateways] max_unconfirmed` is reached: nothing was inserted.
    Full {
        unconfirmed: u64,
    },
}
