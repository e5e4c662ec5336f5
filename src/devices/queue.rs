//! Enqueuing a downlink payload for a device (AWS's SendDataToWirelessDevice, the
//! MQTT command topic): the checks that can be made now — FPort, and the size
//! against the device's RX2 data rate, the one window always open to it — then
//! the stored queue. A class C device is sent to at once; a class A device gets
//! it after its next uplink.

use super::maccommand::MacState;
use super::profile::DeviceProfile;
use super::region::max_frm_payload;
use crate::app::{new_id, now, App};
use crate::store::{DeviceRow, ProfileKind, QueueItem, StoreError};

pub struct Enqueue {
    pub id: Option<String>,
    pub f_port: u8,
    pub data: Vec<u8>,
    pub confirmed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The request cannot be sent as given (the message says why and what to do).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Queues the payload and returns its id (the MessageId).
pub async fn enqueue(app: &App, device: &DeviceRow, q: Enqueue) -> Result<String, EnqueueError> {
    if !(1..=223).contains(&q.f_port) {
        return Err(EnqueueError::Invalid(format!(
            "FPort {} is out of range: application ports are 1 to 223",
            q.f_port
        )));
    }
    let row = app
        .store
        .profile(ProfileKind::Device, device.device_profile_id.clone())
        .await?;
    let profile = DeviceProfile::parse(&row.lorawan).map_err(EnqueueError::Invalid)?;
    let ctx = app.store.device_context(device.id.clone()).await?;
    let rx2_dr = ctx
        .as_ref()
        .and_then(|c| serde_json::from_str::<MacState>(&c.session.mac).ok())
        .map_or(profile.rx2().0, |m| m.rx2_dr);
    let limit = max_frm_payload(profile.region(), rx2_dr, 0).unwrap_or(0);
    if q.data.len() > limit {
        return Err(EnqueueError::Invalid(format!(
            "PayloadData is {} bytes; at the device's RX2 data rate DR{rx2_dr} in {} a downlink carries at most {limit}",
            q.data.len(),
            profile.region()
        )));
    }
    let id = q.id.unwrap_or_else(new_id);
    let item = QueueItem {
        id: id.clone(),
        device_id: device.id.clone(),
        f_port: q.f_port,
        data: q.data,
        confirmed: q.confirmed,
        created_at: now(),
    };
    app.store
        .enqueue(item, app.config.lorawan.max_queue)
        .await?;
    if profile.class_c() && ctx.is_some() {
        super::downlink::send_class_c(app, &device.id).await;
    }
    Ok(id)
}
