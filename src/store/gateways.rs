//! Gateway rows and the last CUPS report of each gateway.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{eui_from_sql, eui_to_sql, Store, StoreError};
use crate::eui::Eui;

/// A gateway as the operator registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGateway {
    pub id: String,
    pub eui: Eui,
    pub name: String,
    pub description: Option<String>,
    pub rf_region: Option<String>,
    pub sub_bands: Option<Vec<u8>>,
    pub join_eui_filters: Option<Vec<[Eui; 2]>>,
    pub net_id_filters: Option<Vec<String>>,
    /// Registered by the operator, or by its own first CUPS poll (open registration).
    pub origin: Origin,
    pub created_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Operator,
    Cups,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Operator => "operator",
            Origin::Cups => "cups",
        }
    }
}

/// A stored gateway with its URI overrides and its last CUPS report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub gw: NewGateway,
    pub cups_uri: Option<String>,
    pub tc_uri: Option<String>,
    pub last_report: Option<CupsReport>,
}

/// What a gateway said on its last poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CupsReport {
    pub at: String,
    pub peer: String,
    pub station: String,
    pub model: String,
    pub package: Option<String>,
    pub keys: Vec<u32>,
    pub cups_uri: Option<String>,
    pub tc_uri: Option<String>,
    pub cups_cred_crc: u32,
    pub tc_cred_crc: u32,
    pub auth: String,
}

/// When and how a gateway was last seen (see `cups::contacts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub at: String,
    pub peer: String,
    pub auth: String,
}

#[derive(Debug, Clone, Default)]
pub struct GatewayPatch {
    pub name: Option<String>,
    pub description: Option<String>,
}

pub(super) const SELECT: &str =
    "SELECT g.id, g.eui, g.name, g.description, g.rf_region, g.sub_bands,
        g.join_eui_filters, g.net_id_filters, g.created_at, g.cups_uri, g.tc_uri, g.origin,
        k.at, k.peer, r.station, r.model, r.package, r.keys, r.cups_uri, r.tc_uri,
        r.cups_cred_crc, r.tc_cred_crc, k.auth
    FROM gateways g LEFT JOIN cups_reports r ON r.gateway_id = g.id
        LEFT JOIN cups_contacts k ON k.eui = g.eui";

fn json_col<T: serde::de::DeserializeOwned>(v: Option<String>) -> Option<T> {
    v.and_then(|s| serde_json::from_str(&s).ok())
}

fn json_val<T: serde::Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref()
        .map(|v| serde_json::to_string(v).expect("plain data serializes"))
}

pub(super) fn gateway_from_row(r: &Row<'_>) -> rusqlite::Result<Gateway> {
    // A report and its contact are written together (`upsert_report`).
    let station: Option<String> = r.get(14)?;
    let last_report = match station {
        Some(station) => Some(CupsReport {
            at: r.get(12)?,
            peer: r.get(13)?,
            station,
            model: r.get(15)?,
            package: r.get(16)?,
            keys: json_col(r.get(17)?).unwrap_or_default(),
            cups_uri: r.get(18)?,
            tc_uri: r.get(19)?,
            cups_cred_crc: r.get(20)?,
            tc_cred_crc: r.get(21)?,
            auth: r.get(22)?,
        }),
        None => None,
    };
    Ok(Gateway {
        gw: NewGateway {
            id: r.get(0)?,
            eui: eui_from_sql(r.get(1)?),
            name: r.get(2)?,
            description: r.get(3)?,
            rf_region: r.get(4)?,
            sub_bands: json_col(r.get(5)?),
            join_eui_filters: json_col(r.get(6)?),
            net_id_filters: json_col(r.get(7)?),
            origin: if r.get::<_, String>(11)? == "cups" {
                Origin::Cups
            } else {
                Origin::Operator
            },
            created_at: r.get(8)?,
        },
        cups_uri: r.get(9)?,
        tc_uri: r.get(10)?,
        last_report,
    })
}

pub(super) fn by_eui(conn: &Connection, eui: Eui) -> Result<Option<Gateway>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("{SELECT} WHERE g.eui = ?1"))?
        .query_row([eui_to_sql(eui)], gateway_from_row)
        .optional()?)
}

pub(super) fn insert(conn: &Connection, g: &NewGateway) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO gateways (id, eui, name, description, rf_region, sub_bands,
             join_eui_filters, net_id_filters, origin, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            g.id,
            eui_to_sql(g.eui),
            g.name,
            g.description,
            g.rf_region,
            json_val(&g.sub_bands),
            json_val(&g.join_eui_filters),
            json_val(&g.net_id_filters),
            g.origin.as_str(),
            g.created_at
        ],
    )
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("a gateway with EUI {} already exists", g.eui))
        }
        other => other,
    })?;
    Ok(())
}

pub(super) fn upsert_report(
    conn: &Connection,
    gateway_id: &str,
    r: &CupsReport,
) -> Result<(), StoreError> {
    // A gateway deleted since the poll began: NotFound, and nothing is written.
    let eui: i64 = conn
        .prepare_cached("SELECT eui FROM gateways WHERE id = ?1")?
        .query_row([gateway_id], |row| row.get(0))?;
    conn.prepare_cached(
        "INSERT INTO cups_reports (gateway_id, eui, station, model, package, keys,
             cups_uri, tc_uri, cups_cred_crc, tc_cred_crc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (gateway_id) DO UPDATE SET
             station = excluded.station, model = excluded.model, package = excluded.package,
             keys = excluded.keys, cups_uri = excluded.cups_uri, tc_uri = excluded.tc_uri,
             cups_cred_crc = excluded.cups_cred_crc, tc_cred_crc = excluded.tc_cred_crc",
    )?
    .execute(params![
        gateway_id,
        eui,
        r.station,
        r.model,
        r.package,
        serde_json::to_string(&r.keys).expect("u32 list serializes"),
        r.cups_uri,
        r.tc_uri,
        r.cups_cred_crc,
        r.tc_cred_crc,
    ])?;
    conn.prepare_cached(
        "INSERT INTO cups_contacts (eui, at, peer, auth) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (eui) DO UPDATE SET at = excluded.at, peer = excluded.peer,
             auth = excluded.auth",
    )?
    .execute(params![eui, r.at, r.peer, r.auth])?;
    Ok(())
}

impl Store {
    /// Inserts a gateway and its tags in one transaction.
    pub async fn create_gateway(
        &self,
        g: NewGateway,
        tags: Vec<super::Tag>,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            insert(&tx, &g)?;
            super::tags::upsert(&tx, super::tags::GATEWAY, &g.id, &tags)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn gateway(&self, id: String) -> Result<Gateway, StoreError> {
        self.run(move |c| {
            Ok(c.prepare_cached(&format!("{SELECT} WHERE g.id = ?1"))?
                .query_row([id], gateway_from_row)?)
        })
        .await
    }

    pub async fn gateway_by_eui(&self, eui: Eui) -> Result<Gateway, StoreError> {
        self.run(move |c| by_eui(c, eui)?.ok_or(StoreError::NotFound))
            .await
    }

    /// Gateways in id order, starting after `after`, at most `limit`.
    /// A page of gateways in Id order, after `after`; with `tag`, only those that
    /// carry that key (and that value, when it is given).
    pub async fn list_gateways(
        &self,
        after: Option<String>,
        limit: usize,
        tag: Option<(String, Option<String>)>,
    ) -> Result<Vec<Gateway>, StoreError> {
        self.run(move |c| {
            let after = after.unwrap_or_default();
            let rows = match tag {
                None => {
                    let mut stmt = c.prepare_cached(&format!(
                        "{SELECT} WHERE g.id > ?1 ORDER BY g.id LIMIT ?2"
                    ))?;
                    let rows = stmt.query_map(params![after, limit as i64], gateway_from_row)?;
                    rows.collect::<Result<Vec<_>, _>>()?
                }
                Some((key, value)) => {
                    let mut stmt = c.prepare_cached(&format!(
                        "{SELECT} WHERE g.id > ?1 AND g.id IN (SELECT resource_id FROM tags
                             WHERE resource_type = ?3 AND key = ?4 AND (?5 IS NULL OR value = ?5))
                         ORDER BY g.id LIMIT ?2"
                    ))?;
                    let rows = stmt.query_map(
                        params![after, limit as i64, super::tags::GATEWAY, key, value],
                        gateway_from_row,
                    )?;
                    rows.collect::<Result<Vec<_>, _>>()?
                }
            };
            Ok(rows)
        })
        .await
    }

    pub async fn patch_gateway(&self, id: String, p: GatewayPatch) -> Result<(), StoreError> {
        self.run(move |c| {
            let n = c.execute(
                "UPDATE gateways SET name = COALESCE(?2, name),
                     description = COALESCE(?3, description) WHERE id = ?1",
                params![id, p.name, p.description],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    /// Sets the per-gateway URI overrides: `None` keeps the current value, an
    /// empty string removes the override.
    pub async fn set_cups_config(
        &self,
        id: String,
        cups_uri: Option<String>,
        tc_uri: Option<String>,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let n = c.execute(
                "UPDATE gateways SET cups_uri = NULLIF(COALESCE(?2, cups_uri), ''),
                     tc_uri = NULLIF(COALESCE(?3, tc_uri), '') WHERE id = ?1",
                params![id, cups_uri, tc_uri],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    pub async fn delete_gateway(&self, id: String) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            if tx.execute("DELETE FROM gateways WHERE id = ?1", [&id])? == 0 {
                return Err(StoreError::NotFound);
            }
            super::tags::untag_all(&tx, super::tags::GATEWAY, &id)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Writes last-contact times, by gateway EUI, in one transaction; never
    /// moves one backwards. No poll's answer depends on them, so they leave
    /// `Store::epoch` alone (`cups_contacts` is in `NOT_READ_BY_POLLS`).
    pub async fn record_contacts(&self, batch: Vec<(Eui, Contact)>) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE cups_contacts SET at = ?2, peer = ?3, auth = ?4
                     WHERE eui = ?1 AND at < ?2",
                )?;
                for (eui, k) in &batch {
                    stmt.execute(params![eui_to_sql(*eui), k.at, k.peer, k.auth])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn count_gateways(&self) -> Result<u64, StoreError> {
        self.run(|c| Ok(c.query_row("SELECT COUNT(*) FROM gateways", [], |r| r.get(0))?))
            .await
    }
}
