//! A campaign's create body (`POST /campaigns`, `POST /campaigns/preview`) and the
//! checks that need nothing but the body: waves, gate, rates, windows, start
//! time. Checks against the store (definitions, the hop chain, the target's
//! gateways) are in `api::campaigns`. Every error names the field. Also the wave
//! plan: which eligible gateway goes into which wave.

use serde::{Deserialize, Serialize};

use super::window::{Windows, WindowsSpec};
use crate::store::Tag;

/// The body of `POST /campaigns` and `POST /campaigns/preview`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CampaignSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Task definition Ids in hop order (one for a single update).
    pub definitions: Vec<String>,
    pub target: TargetSpec,
    pub waves: Vec<WaveSpec>,
    #[serde(default)]
    pub gate: GateSpec,
    /// At most this many of the campaign's tasks open at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_progress: Option<u32>,
    /// At most this many tasks started per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_starts_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_windows: Option<WindowsSpec>,
    /// RFC 3339; the campaign is `Scheduled` until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Make LNS-connected gateways poll CUPS now instead of within a day.
    #[serde(default)]
    pub nudge: bool,
}

/// Which gateways: every criterion given must hold; within a list any entry
/// does (a gateway must carry every tag listed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = CampaignTarget)]
pub struct TargetSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rf_regions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wireless_gateway_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_euis: Vec<String>,
    /// A semver range of the reported `PackageVersion`, e.g. `>=1.0.0, <1.2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_version_range: Option<String>,
}

impl TargetSpec {
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
            && self.models.is_empty()
            && self.rf_regions.is_empty()
            && self.wireless_gateway_ids.is_empty()
            && self.gateway_euis.is_empty()
            && self.package_version_range.is_none()
    }
}

/// One wave: `Count` gateways or `Percent` of the eligible ones (rounded up),
/// and for the first wave optionally the canary gateways it starts with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = CampaignWave)]
pub struct WaveSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// Gateway Ids or EUIs (first wave only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canaries: Vec<String>,
}

/// What crossing the gate does: pause the campaign, or abort it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum OnFailure {
    Pause,
    Abort,
}

/// The gate between waves: the next wave opens once `SuccessPercent` of this
/// one succeeded; `MaxFailures` / `MaxFailurePercent` failures, or
/// `WithinMinutes` without success, cross it and `OnFailure` happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schema(as = CampaignGate)]
pub struct GateSpec {
    pub success_percent: u32,
    pub within_minutes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_percent: Option<u32>,
    pub on_failure: OnFailure,
}

impl Default for GateSpec {
    fn default() -> GateSpec {
        GateSpec {
            success_percent: 100,
            within_minutes: 24 * 60,
            max_failures: None,
            max_failure_percent: None,
            on_failure: OnFailure::Pause,
        }
    }
}

/// The body-only checks passed: parsed parts.
#[derive(Debug, Clone)]
pub struct Checked {
    pub spec: CampaignSpec,
    pub windows: Option<Windows>,
    pub start_us: Option<i64>,
    pub package_range: Option<semver::VersionReq>,
}

impl Checked {
    pub fn max_in_progress(&self) -> u32 {
        self.spec.max_in_progress.unwrap_or(u32::MAX)
    }

    pub fn max_starts_per_minute(&self) -> u32 {
        self.spec.max_starts_per_minute.unwrap_or(u32::MAX)
    }

    pub fn window_open(&self, us: i64) -> bool {
        self.windows.as_ref().is_none_or(|w| w.open_at(us))
    }
}

impl CampaignSpec {
    pub fn check(self) -> Result<Checked, String> {
        if self.definitions.is_empty() {
            return Err("Definitions is empty: give the task definition Id to roll out (several for a multi-hop path, in order)".into());
        }
        if self.target.is_empty() {
            return Err("Target is empty: give Tags, Models, RfRegions, WirelessGatewayIds, GatewayEuis or PackageVersionRange (a campaign never targets every gateway by default)".into());
        }
        let package_range = match &self.target.package_version_range {
            None => None,
            Some(r) => Some(
                crate::firmware::range::parse_req("Target.PackageVersionRange", r)
                    .map_err(|e| e.to_string())?,
            ),
        };
        if self.waves.is_empty() {
            return Err(
                "Waves is empty: give at least one wave, such as [{\"Percent\": 100}]".into(),
            );
        }
        for (i, w) in self.waves.iter().enumerate() {
            match (w.count, w.percent) {
                (Some(0), None) => return Err(format!("Waves[{i}].Count is 0; a wave needs at least one gateway")),
                (None, Some(p)) if p == 0 || p > 100 => {
                    return Err(format!("Waves[{i}].Percent is {p}; give 1 to 100 (a percentage of the eligible gateways)"))
                }
                (Some(_), None) | (None, Some(_)) => {}
                _ => return Err(format!("Waves[{i}] needs exactly one of Count and Percent")),
            }
            if i > 0 && !w.canaries.is_empty() {
                return Err(format!(
                    "Waves[{i}].Canaries: only the first wave takes canary gateways"
                ));
            }
        }
        let g = &self.gate;
        if g.success_percent > 100 {
            return Err(format!(
                "Gate.SuccessPercent is {}; it can never pass above 100",
                g.success_percent
            ));
        }
        if g.within_minutes == 0 {
            return Err("Gate.WithinMinutes is 0: the gate could never pass; give the minutes a wave has to reach SuccessPercent".into());
        }
        if let Some(p) = g.max_failure_percent {
            if p > 100 {
                return Err(format!("Gate.MaxFailurePercent is {p}; give 0 to 100"));
            }
        }
        if self.max_in_progress == Some(0) {
            return Err(
                "MaxInProgress is 0: no gateway could ever start; leave it out for no limit".into(),
            );
        }
        if self.max_starts_per_minute == Some(0) {
            return Err(
                "MaxStartsPerMinute is 0: no gateway could ever start; leave it out for no limit"
                    .into(),
            );
        }
        let windows = self
            .maintenance_windows
            .as_ref()
            .map(WindowsSpec::check)
            .transpose()?;
        let start_us = self
            .start_time
            .as_deref()
            .map(|s| crate::app::parse_time(s).map_err(|e| format!("StartTime: {e}")))
            .transpose()?;
        Ok(Checked {
            spec: self,
            windows,
            start_us,
            package_range,
        })
    }
}

/// Splits the eligible gateways (in order; canaries are put first by the
/// caller) into waves: wave `i` takes its Count, or Percent of all eligible
/// (rounded up), of those still left. Refused when a wave would be empty or
/// when gateways would be left over: the message says how many and how to take them.
pub fn plan_waves(
    eligible: usize,
    canaries: usize,
    waves: &[WaveSpec],
) -> Result<Vec<usize>, String> {
    let mut sizes = Vec::new();
    let mut left = eligible;
    for (i, w) in waves.iter().enumerate() {
        let want = match (w.count, w.percent) {
            (Some(c), _) => c as usize,
            (_, Some(p)) => (eligible * p as usize).div_ceil(100),
            _ => 0,
        };
        let want = if i == 0 { want.max(canaries) } else { want };
        if left == 0 {
            return Err(format!(
                "Waves[{i}] would be empty: the waves before it already take all {eligible} eligible gateways; remove it"
            ));
        }
        let size = want.min(left);
        sizes.push(size);
        left -= size;
    }
    if left > 0 {
        return Err(format!(
            "Waves take {} of the {eligible} eligible gateways; the other {left} would never be updated: make the last wave {{\"Percent\": 100}} to take all that are left, or narrow the Target",
            eligible - left
        ));
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(count: Option<u32>, percent: Option<u32>) -> WaveSpec {
        WaveSpec {
            count,
            percent,
            canaries: vec![],
        }
    }

    #[test]
    fn waves_split_the_eligible_set_and_the_last_takes_what_is_left() {
        let w = [
            wave(Some(2), None),
            wave(None, Some(30)),
            wave(None, Some(100)),
        ];
        assert_eq!(plan_waves(50, 0, &w).unwrap(), vec![2, 15, 33]);
        assert_eq!(plan_waves(50, 5, &w).unwrap(), vec![5, 15, 30]);
        let e = plan_waves(50, 0, &[wave(Some(10), None), wave(None, Some(20))]).unwrap_err();
        assert!(e.contains("the other 30 would never be updated"), "{e}");
        let e = plan_waves(3, 0, &[wave(Some(3), None), wave(None, Some(100))]).unwrap_err();
        assert!(e.contains("Waves[1] would be empty"), "{e}");
    }
}
