//! What the console's Fleet and Gateways pages read beyond the API's own calls:
//! gateways by reported version, how many polled CUPS lately, failed tasks, and
//! a searchable page of gateways. Each is one indexed or single-pass query, so the
//! pages stay fast at 100,000 gateways.

use rusqlite::params;

use super::gateways::{gateway_from_row, SELECT};
use super::{Gateway, Store, StoreError};

/// How many gateways last reported one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionCount {
    pub station: String,
    pub package: Option<String>,
    pub model: String,
    pub count: i64,
}

/// A gateway whose task failed.
#[derive(Debug, Clone)]
pub struct FailedTask {
    pub gateway_id: String,
    pub eui: crate::eui::Eui,
    pub name: String,
    pub reason: String,
    pub at: String,
}

impl Store {
    /// Gateways by last reported version, most common first; `never` is how many
    /// never polled.
    pub async fn fleet_versions(&self) -> Result<(Vec<VersionCount>, i64), StoreError> {
        self.run(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT station, package, model, count(*) AS n FROM cups_reports
                 GROUP BY station, package, model ORDER BY n DESC, station, package",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(VersionCount {
                    station: r.get(0)?,
                    package: r.get(1)?,
                    model: r.get(2)?,
                    count: r.get(3)?,
                })
            })?;
            let versions = rows.collect::<Result<Vec<_>, _>>()?;
            // Every report belongs to a gateway (ON DELETE CASCADE): two counts
            // instead of a lookup per gateway.
            let never = c.query_row(
                "SELECT (SELECT count(*) FROM gateways) - (SELECT count(*) FROM cups_reports)",
                [],
                |r| r.get(0),
            )?;
            Ok((versions, never))
        })
        .await
    }

    /// Gateways whose last CUPS contact is at or after `since` (RFC 3339).
    pub async fn polled_since(&self, since: String) -> Result<i64, StoreError> {
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT count(*) FROM cups_contacts WHERE at >= ?1",
                params![since],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// Up to `limit` gateways whose task ended FAILED, latest first.
    pub async fn failed_tasks(&self, limit: usize) -> Result<Vec<FailedTask>, StoreError> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT g.id, g.eui, g.name, t.status_reason, t.updated_at
                 FROM tasks t JOIN gateways g ON g.id = t.gateway_id
                 WHERE t.status = 'FAILED' AND t.deleted = 0
                 ORDER BY t.updated_at DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit as i64], |r| {
                Ok(FailedTask {
                    gateway_id: r.get(0)?,
                    eui: super::eui_from_sql(r.get(1)?),
                    name: r.get(2)?,
                    reason: r.get(3)?,
                    at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// One page of gateways by Id after `after`, those matching `search` only:
    /// a name containing it, an EUI starting with it (hex), or a reported
    /// station/package version equal to it.
    pub async fn search_gateways(
        &self,
        search: Option<String>,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<Gateway>, StoreError> {
        self.run(move |c| {
            let after = after.unwrap_or_default();
            let rows = match search.filter(|s| !s.is_empty()) {
                None => {
                    let mut stmt = c.prepare_cached(&format!(
                        "{SELECT} WHERE g.id > ?1 ORDER BY g.id LIMIT ?2"
                    ))?;
                    let rows = stmt.query_map(params![after, limit as i64], gateway_from_row)?;
                    rows.collect::<Result<Vec<_>, _>>()?
                }
                Some(s) => {
                    let (lo, hi) = eui_prefix_range(&s).unwrap_or((1, 0));
                    let mut stmt = c.prepare_cached(&format!(
                        "{SELECT} WHERE g.id > ?1 AND (instr(lower(g.name), lower(?3)) > 0
                           OR (g.eui BETWEEN ?4 AND ?5) OR r.station = ?3 OR r.package = ?3)
                         ORDER BY g.id LIMIT ?2"
                    ))?;
                    let rows =
                        stmt.query_map(params![after, limit as i64, s, lo, hi], gateway_from_row)?;
                    rows.collect::<Result<Vec<_>, _>>()?
                }
            };
            Ok(rows)
        })
        .await
    }
}

/// The stored (i64 bit pattern) EUI range a hex prefix covers. A non-empty
/// prefix fixes the top bit, so the range never crosses the sign.
fn eui_prefix_range(s: &str) -> Option<(i64, i64)> {
    let hex: String = s.chars().filter(|c| *c != '-' && *c != ':').collect();
    if hex.is_empty() || hex.len() > 16 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let shift = 4 * (16 - hex.len() as u32);
    let base = u64::from_str_radix(&hex, 16)
        .ok()?
        .checked_shl(shift)
        .unwrap_or(0);
    let top = base
        | if shift == 64 {
            u64::MAX
        } else {
            (1u64 << shift) - 1
        };
    let (lo, hi) = (base as i64, top as i64);
    (lo <= hi).then_some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eui_prefixes_become_ranges() {
        assert_eq!(
            eui_prefix_range("0016c0"),
            Some((0x0016_c000_0000_0000, 0x0016_c0ff_ffff_ffff))
        );
        assert_eq!(eui_prefix_range("00-16-c0"), eui_prefix_range("0016c0"));
        assert_eq!(eui_prefix_range("north"), None);
        assert_eq!(
            eui_prefix_range("ffff"),
            Some((0xffff_0000_0000_0000u64 as i64, -1))
        );
    }
}
