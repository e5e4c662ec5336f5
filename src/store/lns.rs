//! The LNS face's per-gateway record: version, connection times, counters.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};
use crate::lns::msg::Version;
use crate::lns::registry::LiveStats;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LnsState {
    pub station: Option<String>,
    pub firmware: Option<String>,
    pub package: Option<String>,
    pub model: Option<String>,
    pub protocol: Option<i64>,
    pub features: Option<String>,
    pub region_warning: Option<String>,
    pub connected_at: Option<String>,
    pub disconnected_at: Option<String>,
    pub last_uplink_at: Option<String>,
    pub uplinks: u64,
    pub last_rssi: Option<f64>,
    pub last_snr: Option<f64>,
}

impl Store {
    /// Records a `version` message; returns the gateway's stored uplink count, the
    /// base the new session counts on from.
    pub async fn lns_connected(
        &self,
        gateway_id: String,
        v: Version,
        region_warning: Option<String>,
        at: String,
    ) -> Result<u64, StoreError> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO lns_state (gateway_id, station, firmware, package, model, protocol, features,
                     region_warning, connected_at, disconnected_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL)
                 ON CONFLICT (gateway_id) DO UPDATE SET station = excluded.station,
                     firmware = excluded.firmware, package = excluded.package, model = excluded.model,
                     protocol = excluded.protocol, features = excluded.features,
                     region_warning = excluded.region_warning, connected_at = excluded.connected_at,
                     disconnected_at = NULL",
                params![gateway_id, v.station, v.firmware, v.package, v.model, v.protocol, v.features, region_warning, at],
            )?;
            Ok(c.query_row("SELECT uplinks FROM lns_state WHERE gateway_id = ?1", [&gateway_id], |r| r.get(0))?)
        })
        .await
    }

    /// Saves a session's counters (which started from the stored count).
    pub async fn lns_stats(&self, gateway_id: String, s: LiveStats) -> Result<(), StoreError> {
        self.save_stats(gateway_id, s, None).await
    }

    pub async fn lns_disconnected(
        &self,
        gateway_id: String,
        at: String,
        s: LiveStats,
    ) -> Result<(), StoreError> {
        self.save_stats(gateway_id, s, Some(at)).await
    }

    async fn save_stats(
        &self,
        gateway_id: String,
        s: LiveStats,
        disconnected: Option<String>,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO lns_state (gateway_id, uplinks) VALUES (?1, 0) ON CONFLICT (gateway_id) DO NOTHING",
                [&gateway_id],
            )?;
            c.execute(
                "UPDATE lns_state SET uplinks = ?2,
                     last_uplink_at = COALESCE(?3, last_uplink_at),
                     last_rssi = COALESCE(?4, last_rssi), last_snr = COALESCE(?5, last_snr),
                     disconnected_at = COALESCE(?6, disconnected_at)
                 WHERE gateway_id = ?1",
                params![gateway_id, s.uplinks, s.last_uplink_at, s.last_rssi, s.last_snr, disconnected],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn lns_state(&self, gateway_id: String) -> Result<Option<LnsState>, StoreError> {
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT station, firmware, package, model, protocol, features, region_warning,
                        connected_at, disconnected_at, last_uplink_at, uplinks, last_rssi, last_snr
                 FROM lns_state WHERE gateway_id = ?1",
                [gateway_id],
                |r| {
                    Ok(LnsState {
                        station: r.get(0)?,
                        firmware: r.get(1)?,
                        package: r.get(2)?,
                        model: r.get(3)?,
                        protocol: r.get(4)?,
                        features: r.get(5)?,
                        region_warning: r.get(6)?,
                        connected_at: r.get(7)?,
                        disconnected_at: r.get(8)?,
                        last_uplink_at: r.get(9)?,
                        uplinks: r.get(10)?,
                        last_rssi: r.get(11)?,
                        last_snr: r.get(12)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }
}
