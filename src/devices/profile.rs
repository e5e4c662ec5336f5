//! A device profile's `LoRaWAN` object (AWS's CreateDeviceProfile shape plus our
//! `UplinkIntervalSeconds`), checked once when it is created and read back by the
//! device path. Frequencies in the AWS shape are in units of 100 Hz.

use serde::{Deserialize, Serialize};

use super::region::{rx2_default, DEVICE_REGIONS};

/// AWS's device profile fields (`LoRaWAN` of CreateDeviceProfile), with our
/// `UplinkIntervalSeconds`. Required: `RfRegion`; `MacVersion` defaults to 1.0.3.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = DeviceProfileLoRaWAN)]
pub struct DeviceProfile {
    pub mac_version: Option<String>,
    pub reg_params_revision: Option<String>,
    pub rf_region: Option<String>,
    pub supports_join: Option<bool>,
    #[serde(rename = "Supports32BitFCnt")]
    pub supports_32_bit_f_cnt: Option<bool>,
    pub supports_class_b: Option<bool>,
    pub class_b_timeout: Option<u32>,
    pub ping_slot_period: Option<u32>,
    pub ping_slot_dr: Option<u8>,
    pub ping_slot_freq: Option<u32>,
    pub supports_class_c: Option<bool>,
    pub class_c_timeout: Option<u32>,
    pub rx_delay1: Option<u8>,
    pub rx_dr_offset1: Option<u8>,
    pub rx_data_rate2: Option<u8>,
    pub rx_freq2: Option<u32>,
    pub factory_preset_freqs_list: Option<Vec<u32>>,
    pub max_eirp: Option<u8>,
    pub max_duty_cycle: Option<u8>,
    /// Ours: how often the device is expected to send uplinks (what the FUOTA
    /// control plane waits between unicast tries).
    pub uplink_interval_seconds: Option<u32>,
}

pub const MAC_VERSIONS: &[&str] = &["1.0.2", "1.0.3", "1.0.4"];

impl DeviceProfile {
    /// Checks the fields this server uses; the error names the field and the fix.
    pub fn validate(&self) -> Result<(), String> {
        let v = self.mac_version.as_deref().unwrap_or("1.0.3");
        if !MAC_VERSIONS.contains(&v) {
            return Err(format!(
                "LoRaWAN.MacVersion {v:?} is not supported: use 1.0.2, 1.0.3 or 1.0.4"
            ));
        }
        let r = self
            .rf_region
            .as_deref()
            .ok_or("LoRaWAN.RfRegion is required: EU868 or US915")?;
        if !DEVICE_REGIONS.contains(&r) {
            return Err(format!(
                "LoRaWAN.RfRegion {r:?} is not supported for end devices: use EU868 or US915"
            ));
        }
        let bound = |name: &str, v: Option<u32>, max: u32| match v {
            Some(x) if x > max => Err(format!("LoRaWAN.{name} is {x}; the most is {max}")),
            _ => Ok(()),
        };
        bound("RxDelay1", self.rx_delay1.map(u32::from), 15)?;
        bound(
            "RxDrOffset1",
            self.rx_dr_offset1.map(u32::from),
            if r == "EU868" { 5 } else { 3 },
        )?;
        bound("RxDataRate2", self.rx_data_rate2.map(u32::from), 15)?;
        bound("ClassCTimeout", self.class_c_timeout, 1000)?;
        bound("MaxDutyCycle", self.max_duty_cycle.map(u32::from), 100)?;
        bound(
            "UplinkIntervalSeconds",
            self.uplink_interval_seconds,
            86_400 * 7,
        )?;
        if let Some(dr) = self.rx_data_rate2 {
            if crate::lns::regions::dr(r, dr).is_none() {
                return Err(format!(
                    "LoRaWAN.RxDataRate2 DR{dr} is not a data rate of {r}"
                ));
            }
        }
        if let Some(f) = self.rx_freq2 {
            if !(1_000_000..=16_700_000).contains(&f) {
                return Err(format!("LoRaWAN.RxFreq2 {f} is out of range: give it in units of 100 Hz (e.g. 8695250 for 869.525 MHz)"));
            }
        }
        Ok(())
    }

    pub fn region(&self) -> &str {
        self.rf_region.as_deref().unwrap_or("EU868")
    }

    pub fn mac_version(&self) -> &str {
        self.mac_version.as_deref().unwrap_or("1.0.3")
    }

    pub fn class_c(&self) -> bool {
        self.supports_class_c.unwrap_or(false)
    }

    /// MAX_FCNT_GAP applies to 1.0.2/1.0.3 devices only.
    pub fn gap_rule(&self) -> bool {
        self.mac_version() != "1.0.4"
    }

    /// RX2 (DR, Hz) the profile wants, defaults where it says nothing.
    pub fn rx2(&self) -> (u8, u32) {
        let (dr, f) = rx2_default(self.region()).unwrap_or((0, 869_525_000));
        (
            self.rx_data_rate2.unwrap_or(dr),
            self.rx_freq2.map_or(f, |x| x * 100),
        )
    }

    pub fn parse(json: &str) -> Result<DeviceProfile, String> {
        serde_json::from_str(json).map_err(|e| format!("stored device profile unreadable: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_field() {
        let p = DeviceProfile {
            rf_region: Some("AS923".into()),
            ..Default::default()
        };
        assert!(p.validate().unwrap_err().contains("RfRegion"));
        let p = DeviceProfile {
            rf_region: Some("US915".into()),
            rx_dr_offset1: Some(4),
            ..Default::default()
        };
        assert!(p.validate().unwrap_err().contains("RxDrOffset1"));
        let p = DeviceProfile {
            rf_region: Some("EU868".into()),
            rx_freq2: Some(8_695_250),
            ..Default::default()
        };
        p.validate().unwrap();
        assert_eq!(p.rx2(), (0, 869_525_000));
    }
}
