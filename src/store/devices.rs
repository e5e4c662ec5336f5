//! End devices: device and service profiles, devices with their root keys, the
//! join server's DevNonce memory, sessions (slot 0 active, slot 1 a join's session
//! until its first uplink), the downlink queue and a bounded event log per device.
//! Counters only move forward: an uplink is accepted with a guarded update, and a
//! downlink's FCnt is committed before its frame leaves.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{eui_from_sql, eui_to_sql, Store, StoreError};
use crate::eui::Eui;

/// A profile (device or service): its `LoRaWAN` object as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRow {
    pub id: String,
    pub name: Option<String>,
    pub created_at: String,
    pub lorawan: String,
}

#[derive(Clone, PartialEq)]
pub struct OtaaKeys {
    pub join_eui: Eui,
    pub app_key: [u8; 16],
    pub gen_app_key: Option<[u8; 16]>,
}

impl std::fmt::Debug for OtaaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OtaaKeys {{ join_eui: {}, keys: <hidden> }}",
            self.join_eui
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRow {
    pub id: String,
    pub dev_eui: Eui,
    pub name: Option<String>,
    pub description: Option<String>,
    pub destination: String,
    pub device_profile_id: String,
    pub service_profile_id: Option<String>,
    pub created_at: String,
    pub otaa: Option<OtaaKeys>,
    pub last_uplink_at: Option<String>,
    pub last_uplink: Option<String>,
}

#[derive(Clone, PartialEq)]
pub struct SessionRow {
    pub device_id: String,
    /// 0 active, 1 pending (a join's session before its first uplink).
    pub slot: u8,
    pub dev_addr: u32,
    pub nwk_s_key: [u8; 16],
    pub app_s_key: [u8; 16],
    /// Next expected FCntUp and next FCntDown to use.
    pub fcnt_up: u32,
    pub fcnt_down: u32,
    /// `devices::maccommand::MacState` as JSON.
    pub mac: String,
}

impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRow")
            .field("device_id", &self.device_id)
            .field("slot", &self.slot)
            .field("dev_addr", &format_args!("{:08x}", self.dev_addr))
            .field("fcnt_up", &self.fcnt_up)
            .field("fcnt_down", &self.fcnt_down)
            .finish_non_exhaustive()
    }
}

/// A device with its profile and one of its sessions: what an uplink needs.
#[derive(Debug, Clone)]
pub struct DeviceContext {
    pub device: DeviceRow,
    pub profile: ProfileRow,
    pub session: SessionRow,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    pub id: String,
    pub device_id: String,
    pub f_port: u8,
    pub data: Vec<u8>,
    pub confirmed: bool,
    pub created_at: String,
}

/// How the join server judges a DevNonce (end-devices.md §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceRule {
    /// 1.0.4: must be greater than every earlier one.
    Increasing,
    /// 1.0.2/1.0.3: must not repeat one of the last `KEEP_NONCES`.
    Unused,
}

/// DevNonces remembered per device (end-devices.md §2.2: at least 1024).
pub const KEEP_NONCES: i64 = 1024;

/// What the next downlink of a session carries, reserved in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct DownlinkReservation {
    pub fcnt_down: u32,
    pub item: Option<QueueItem>,
    /// More items wait after this one (FPending).
    pub more: bool,
}

/// The outcome of an uplink the network accepted, written in one transaction.
#[derive(Debug, Clone)]
pub struct AcceptedUplink {
    pub device_id: String,
    pub slot: u8,
    pub full_fcnt: u32,
    pub mac: String,
    pub at: String,
    pub stats: String,
    /// The uplink carried ACK: the confirmed item awaiting it is done.
    pub ack: bool,
}

/// What accepting an uplink did to the confirmed downlink awaiting an ACK.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfirmedOutcome {
    None,
    Acknowledged {
        item_id: String,
        fcnt: u32,
    },
    /// Not acknowledged: re-sent later, or given up after `MAX_CONFIRMED_TRIES`.
    Missed {
        item_id: String,
        fcnt: u32,
        given_up: bool,
    },
}

pub const MAX_CONFIRMED_TRIES: i64 = 3;

const DEVICE_COLS: &str = "d.id, d.dev_eui, d.name, d.description, d.destination, d.device_profile_id,
     d.service_profile_id, d.created_at, d.join_eui, d.app_key, d.gen_app_key, d.last_uplink_at, d.last_uplink";

fn key16(v: Option<Vec<u8>>) -> Option<[u8; 16]> {
    v.and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
}

fn device_from(r: &Row<'_>) -> rusqlite::Result<DeviceRow> {
    let join_eui: Option<i64> = r.get(8)?;
    let app_key = key16(r.get(9)?);
    Ok(DeviceRow {
        id: r.get(0)?,
        dev_eui: eui_from_sql(r.get(1)?),
        name: r.get(2)?,
        description: r.get(3)?,
        destination: r.get(4)?,
        device_profile_id: r.get(5)?,
        service_profile_id: r.get(6)?,
        created_at: r.get(7)?,
        otaa: match (join_eui, app_key) {
            (Some(j), Some(k)) => Some(OtaaKeys {
                join_eui: eui_from_sql(j),
                app_key: k,
                gen_app_key: key16(r.get(10)?),
            }),
            _ => None,
        },
        last_uplink_at: r.get(11)?,
        last_uplink: r.get(12)?,
    })
}

fn session_from(r: &Row<'_>, at: usize) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        device_id: r.get(at)?,
        slot: r.get(at + 1)?,
        dev_addr: r.get::<_, i64>(at + 2)? as u32,
        nwk_s_key: key16(r.get(at + 3)?).unwrap_or_default(),
        app_s_key: key16(r.get(at + 4)?).unwrap_or_default(),
        fcnt_up: r.get::<_, i64>(at + 5)? as u32,
        fcnt_down: r.get::<_, i64>(at + 6)? as u32,
        mac: r.get(at + 7)?,
    })
}

const SESSION_COLS: &str =
    "s.device_id, s.slot, s.dev_addr, s.nwk_s_key, s.app_s_key, s.fcnt_up, s.fcnt_down, s.mac";

fn insert_session(c: &Connection, s: &SessionRow, at: &str) -> Result<(), StoreError> {
    c.execute(
        "INSERT OR REPLACE INTO device_sessions
           (device_id, slot, dev_addr, nwk_s_key, app_s_key, fcnt_up, fcnt_down, mac, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            s.device_id,
            s.slot,
            i64::from(s.dev_addr),
            s.nwk_s_key.as_slice(),
            s.app_s_key.as_slice(),
            i64::from(s.fcnt_up),
            i64::from(s.fcnt_down),
            s.mac,
            at
        ],
    )?;
    Ok(())
}

fn profile_from(r: &Row<'_>) -> rusqlite::Result<ProfileRow> {
    Ok(ProfileRow {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get(2)?,
        lorawan: r.get(3)?,
    })
}

/// `device_profiles` or `service_profiles`: the two tables share one shape.
#[derive(Debug, Clone, Copy)]
pub enum ProfileKind {
    Device,
    Service,
}

impl ProfileKind {
    fn table(self) -> &'static str {
        match self {
            ProfileKind::Device => "device_profiles",
            ProfileKind::Service => "service_profiles",
        }
    }
}

impl Store {
    pub async fn insert_profile(&self, kind: ProfileKind, p: ProfileRow) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO {} (id, name, created_at, lorawan) VALUES (?1, ?2, ?3, ?4)",
                    kind.table()
                ),
                params![p.id, p.name, p.created_at, p.lorawan],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn profile(&self, kind: ProfileKind, id: String) -> Result<ProfileRow, StoreError> {
        self.run(move |c| {
            Ok(c.query_row(
                &format!(
                    "SELECT id, name, created_at, lorawan FROM {} WHERE id = ?1",
                    kind.table()
                ),
                params![id],
                profile_from,
            )?)
        })
        .await
    }

    pub async fn list_profiles(
        &self,
        kind: ProfileKind,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<ProfileRow>, StoreError> {
        self.run(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT id, name, created_at, lorawan FROM {} WHERE id > ?1 ORDER BY id LIMIT ?2",
                kind.table()
            ))?;
            let rows = st.query_map(
                params![after.unwrap_or_default(), limit as i64],
                profile_from,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Deletes a profile no device uses.
    pub async fn delete_profile(&self, kind: ProfileKind, id: String) -> Result<(), StoreError> {
        self.run(move |c| {
            let column = match kind {
                ProfileKind::Device => "device_profile_id",
                ProfileKind::Service => "service_profile_id",
            };
            let users: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM devices WHERE {column} = ?1"),
                params![id],
                |r| r.get(0),
            )?;
            if users > 0 {
                return Err(StoreError::Conflict(format!(
                    "{users} wireless device(s) use this profile; delete them first"
                )));
            }
            match c.execute(
                &format!("DELETE FROM {} WHERE id = ?1", kind.table()),
                params![id],
            )? {
                0 => Err(StoreError::NotFound),
                _ => Ok(()),
            }
        })
        .await
    }

    /// Inserts a device, with its session for an ABP device, in one transaction.
    pub async fn insert_device(
        &self,
        d: DeviceRow,
        abp: Option<SessionRow>,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let (join_eui, app_key, gen_app_key) = match &d.otaa {
                Some(k) => (Some(eui_to_sql(k.join_eui)), Some(k.app_key.to_vec()), k.gen_app_key.map(|g| g.to_vec())),
                None => (None, None, None),
            };
            tx.execute(
                "INSERT INTO devices (id, dev_eui, name, description, destination, device_profile_id,
                     service_profile_id, created_at, join_eui, app_key, gen_app_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    d.id,
                    eui_to_sql(d.dev_eui),
                    d.name,
                    d.description,
                    d.destination,
                    d.device_profile_id,
                    d.service_profile_id,
                    d.created_at,
                    join_eui,
                    app_key,
                    gen_app_key
                ],
            )?;
            if let Some(s) = abp {
                insert_session(&tx, &s, &d.created_at)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn device(&self, id: String) -> Result<DeviceRow, StoreError> {
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT {DEVICE_COLS} FROM devices d WHERE d.id = ?1"),
                params![id],
                device_from,
            )?)
        })
        .await
    }

    pub async fn device_by_eui(&self, eui: Eui) -> Result<DeviceRow, StoreError> {
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT {DEVICE_COLS} FROM devices d WHERE d.dev_eui = ?1"),
                params![eui_to_sql(eui)],
                device_from,
            )?)
        })
        .await
    }

    /// Devices in id order after `after`, optionally of one destination or profile.
    pub async fn list_devices(
        &self,
        after: Option<String>,
        limit: usize,
        destination: Option<String>,
        device_profile_id: Option<String>,
    ) -> Result<Vec<DeviceRow>, StoreError> {
        self.run(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {DEVICE_COLS} FROM devices d WHERE d.id > ?1
                   AND (?3 IS NULL OR d.destination = ?3) AND (?4 IS NULL OR d.device_profile_id = ?4)
                 ORDER BY d.id LIMIT ?2"
            ))?;
            let rows = st.query_map(
                params![after.unwrap_or_default(), limit as i64, destination, device_profile_id],
                device_from,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn delete_device(&self, id: String) -> Result<(), StoreError> {
        self.run(
            move |c| match c.execute("DELETE FROM devices WHERE id = ?1", params![id])? {
                0 => Err(StoreError::NotFound),
                _ => Ok(()),
            },
        )
        .await
    }

    /// The device, its profile and its active session (slot 0), if it has one.
    pub async fn device_context(
        &self,
        device_id: String,
    ) -> Result<Option<DeviceContext>, StoreError> {
        self.run(move |c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {DEVICE_COLS}, p.id, p.name, p.created_at, p.lorawan, {SESSION_COLS}
                       FROM devices d JOIN device_profiles p ON p.id = d.device_profile_id
                       JOIN device_sessions s ON s.device_id = d.id AND s.slot = 0
                      WHERE d.id = ?1"
                ),
                params![device_id],
                context_from,
            )
            .optional()?)
        })
        .await
    }

    /// Every session (active or pending) holding `dev_addr`, with its device and profile.
    pub async fn sessions_by_dev_addr(
        &self,
        dev_addr: u32,
    ) -> Result<Vec<DeviceContext>, StoreError> {
        self.run(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {DEVICE_COLS}, p.id, p.name, p.created_at, p.lorawan, {SESSION_COLS}
                   FROM device_sessions s JOIN devices d ON d.id = s.device_id
                   JOIN device_profiles p ON p.id = d.device_profile_id
                  WHERE s.dev_addr = ?1 ORDER BY s.slot DESC"
            ))?;
            let rows = st.query_map(params![i64::from(dev_addr)], context_from)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn dev_addr_in_use(&self, dev_addr: u32) -> Result<bool, StoreError> {
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT EXISTS(SELECT 1 FROM device_sessions WHERE dev_addr = ?1)",
                params![i64::from(dev_addr)],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// Checks and records a join-request's DevNonce and takes the next JoinNonce, in
    /// one transaction. A DevNonce the rule refuses is a `Conflict` naming it.
    pub async fn take_join_nonce(
        &self,
        device_id: String,
        join_eui: Eui,
        dev_nonce: u16,
        rule: NonceRule,
        at: String,
    ) -> Result<u32, StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let je = eui_to_sql(join_eui);
            let refused = match rule {
                NonceRule::Increasing => tx.query_row(
                    "SELECT EXISTS(SELECT 1 FROM dev_nonces WHERE device_id = ?1 AND join_eui = ?2 AND dev_nonce >= ?3)",
                    params![device_id, je, dev_nonce],
                    |r| r.get::<_, bool>(0),
                )?,
                NonceRule::Unused => tx.query_row(
                    "SELECT EXISTS(SELECT 1 FROM dev_nonces WHERE device_id = ?1 AND join_eui = ?2 AND dev_nonce = ?3)",
                    params![device_id, je, dev_nonce],
                    |r| r.get::<_, bool>(0),
                )?,
            };
            if refused {
                return Err(StoreError::Conflict(match rule {
                    NonceRule::Increasing => format!("DevNonce {dev_nonce} is not greater than the last one (LoRaWAN 1.0.4)"),
                    NonceRule::Unused => format!("DevNonce {dev_nonce} already used"),
                }));
            }
            tx.execute(
                "INSERT INTO dev_nonces (device_id, join_eui, dev_nonce, at) VALUES (?1, ?2, ?3, ?4)",
                params![device_id, je, dev_nonce, at],
            )?;
            tx.execute(
                "DELETE FROM dev_nonces WHERE device_id = ?1 AND rowid NOT IN
                   (SELECT rowid FROM dev_nonces WHERE device_id = ?1 ORDER BY at DESC, rowid DESC LIMIT ?2)",
                params![device_id, KEEP_NONCES],
            )?;
            let nonce: i64 = tx.query_row(
                "UPDATE devices SET join_nonce = (join_nonce + 1) % 16777216 WHERE id = ?1 RETURNING join_nonce",
                params![device_id],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(nonce as u32)
        })
        .await
    }

    /// Stores a join's session as pending (slot 1) beside the active one.
    pub async fn store_pending_session(&self, s: SessionRow, at: String) -> Result<(), StoreError> {
        self.run(move |c| insert_session(c, &SessionRow { slot: 1, ..s }, &at))
            .await
    }

    /// Accepts an uplink: the session's counter moves to `full_fcnt + 1` only if no
    /// other copy got there first (`Ok(None)` then); a pending session becomes the
    /// active one; the device's last uplink and the confirmed downlink's fate are
    /// recorded. One transaction.
    pub async fn accept_uplink(
        &self,
        u: AcceptedUplink,
    ) -> Result<Option<ConfirmedOutcome>, StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let moved = tx.execute(
                "UPDATE device_sessions SET fcnt_up = ?3 + 1, mac = ?4
                  WHERE device_id = ?1 AND slot = ?2 AND fcnt_up <= ?3",
                params![u.device_id, u.slot, i64::from(u.full_fcnt), u.mac],
            )?;
            if moved == 0 {
                return Ok(None);
            }
            if u.slot == 1 {
                tx.execute(
                    "DELETE FROM device_sessions WHERE device_id = ?1 AND slot = 0",
                    params![u.device_id],
                )?;
                tx.execute(
                    "UPDATE device_sessions SET slot = 0 WHERE device_id = ?1 AND slot = 1",
                    params![u.device_id],
                )?;
                // Items awaiting an ACK under the old keys will never get one.
                tx.execute(
                    "UPDATE device_queue SET sent_fcnt = NULL WHERE device_id = ?1",
                    params![u.device_id],
                )?;
            }
            tx.execute(
                "UPDATE devices SET last_uplink_at = ?2, last_uplink = ?3 WHERE id = ?1",
                params![u.device_id, u.at, u.stats],
            )?;
            let outcome = settle_confirmed(&tx, &u.device_id, u.ack)?;
            tx.commit()?;
            Ok(Some(outcome))
        })
        .await
    }

    /// Saves MAC state without moving counters (e.g. after a retransmission).
    pub async fn save_mac(
        &self,
        device_id: String,
        slot: u8,
        mac: String,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            c.execute(
                "UPDATE device_sessions SET mac = ?3 WHERE device_id = ?1 AND slot = ?2",
                params![device_id, slot, mac],
            )?;
            Ok(())
        })
        .await
    }

    /// Takes the next FCntDown of the active session and, when `room` bytes of
    /// FRMPayload are free, the first queue item that fits and is not awaiting an
    /// ACK. Committed before the frame is handed to a gateway, so a counter is never
    /// used twice. `confirmed_ok` is false while a confirmed item awaits its ACK.
    pub async fn reserve_downlink(
        &self,
        device_id: String,
        room: Option<usize>,
    ) -> Result<DownlinkReservation, StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let fcnt: i64 = tx.query_row(
                "UPDATE device_sessions SET fcnt_down = fcnt_down + 1 WHERE device_id = ?1 AND slot = 0
                 RETURNING fcnt_down - 1",
                params![device_id],
                |r| r.get(0),
            )?;
            let awaiting: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM device_queue WHERE device_id = ?1 AND sent_fcnt IS NOT NULL)",
                params![device_id],
                |r| r.get(0),
            )?;
            let mut item = None;
            if let Some(room) = room {
                let mut st = tx.prepare_cached(
                    "SELECT id, device_id, f_port, data, confirmed, created_at FROM device_queue
                      WHERE device_id = ?1 AND sent_fcnt IS NULL ORDER BY seq LIMIT 1",
                )?;
                let first = st
                    .query_row(params![device_id], |r| {
                        Ok(QueueItem {
                            id: r.get(0)?,
                            device_id: r.get(1)?,
                            f_port: r.get(2)?,
                            data: r.get(3)?,
                            confirmed: r.get(4)?,
                            created_at: r.get(5)?,
                        })
                    })
                    .optional()?;
                // A confirmed item waits while another awaits its ACK (1.0.4 §15).
                item = first.filter(|q| q.data.len() <= room && !(q.confirmed && awaiting));
            }
            if let Some(q) = &item {
                if q.confirmed {
                    tx.execute(
                        "UPDATE device_queue SET sent_fcnt = ?2, sent_at = datetime('now'), attempts = attempts + 1 WHERE id = ?1",
                        params![q.id, fcnt],
                    )?;
                } else {
                    tx.execute("DELETE FROM device_queue WHERE id = ?1", params![q.id])?;
                }
            }
            let more: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM device_queue WHERE device_id = ?1 AND sent_fcnt IS NULL)",
                params![device_id],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(DownlinkReservation {
                fcnt_down: fcnt as u32,
                item,
                more,
            })
        })
        .await
    }

    pub async fn enqueue(&self, q: QueueItem, max_queue: usize) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let n: i64 = tx.query_row("SELECT COUNT(*) FROM device_queue WHERE device_id = ?1", params![q.device_id], |r| r.get(0))?;
            if n as usize >= max_queue {
                return Err(StoreError::Conflict(format!(
                    "the device's downlink queue is full ({n} items, [devices] max_queue); wait for its next uplink"
                )));
            }
            tx.execute(
                "INSERT INTO device_queue (id, seq, device_id, f_port, data, confirmed, created_at)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM device_queue), ?2, ?3, ?4, ?5, ?6)",
                params![q.id, q.device_id, q.f_port, q.data, q.confirmed, q.created_at],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn queued(&self, device_id: String) -> Result<usize, StoreError> {
        self.run(move |c| {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM device_queue WHERE device_id = ?1",
                params![device_id],
                |r| r.get(0),
            )?;
            Ok(n as usize)
        })
        .await
    }

    /// Appends events to devices' logs, keeping the newest `keep` per device.
    pub async fn record_device_events(
        &self,
        events: Vec<(String, String, String, String)>,
        keep: usize,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            for (device_id, at, kind, body) in &events {
                tx.execute(
                    "INSERT INTO device_events (device_id, at, kind, body) VALUES (?1, ?2, ?3, ?4)",
                    params![device_id, at, kind, body],
                )?;
                tx.execute(
                    "DELETE FROM device_events WHERE device_id = ?1 AND seq <=
                       (SELECT seq FROM device_events WHERE device_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                    params![device_id, keep as i64],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// A device's events after `after` (sequence number), oldest first.
    pub async fn device_events(
        &self,
        device_id: String,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String, String, String)>, StoreError> {
        self.run(move |c| {
            let mut st = c.prepare_cached(
                "SELECT seq, at, kind, body FROM device_events WHERE device_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = st.query_map(params![device_id, after, limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}

fn context_from(r: &Row<'_>) -> rusqlite::Result<DeviceContext> {
    Ok(DeviceContext {
        device: device_from(r)?,
        profile: ProfileRow {
            id: r.get(13)?,
            name: r.get(14)?,
            created_at: r.get(15)?,
            lorawan: r.get(16)?,
        },
        session: session_from(r, 17)?,
    })
}

/// The confirmed item that went out awaits this uplink's ACK bit.
fn settle_confirmed(
    c: &Connection,
    device_id: &str,
    ack: bool,
) -> Result<ConfirmedOutcome, StoreError> {
    let sent: Option<(String, i64, i64)> = c
        .query_row(
            "SELECT id, sent_fcnt, attempts FROM device_queue WHERE device_id = ?1 AND sent_fcnt IS NOT NULL",
            params![device_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((item_id, fcnt, attempts)) = sent else {
        return Ok(ConfirmedOutcome::None);
    };
    let fcnt = fcnt as u32;
    if ack {
        c.execute("DELETE FROM device_queue WHERE id = ?1", params![item_id])?;
        return Ok(ConfirmedOutcome::Acknowledged { item_id, fcnt });
    }
    let given_up = attempts >= MAX_CONFIRMED_TRIES;
    if given_up {
        c.execute("DELETE FROM device_queue WHERE id = ?1", params![item_id])?;
    } else {
        c.execute(
            "UPDATE device_queue SET sent_fcnt = NULL WHERE id = ?1",
            params![item_id],
        )?;
    }
    Ok(ConfirmedOutcome::Missed {
        item_id,
        fcnt,
        given_up,
    })
}
