//! Which gateways a campaign takes, pure: the target's criteria pick the
//! targeted gateways; of those, a gateway is eligible when it has polled CUPS
//! recently, reports a version one of the hops updates, holds that hop's signing
//! key and has no open task. The others are grouped by reason for the preview
//! and the create answer. Gateways carrying an active FUOTA session are eligible
//! but wait (their reason is shown).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::decide::{first_hop, Hop};
use super::spec::Checked;
use crate::firmware::range::lenient_semver;
use crate::store::Candidate;

/// The outcome over the fleet.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Eligibility {
    /// Eligible gateway Ids, in EUI order.
    pub eligible: Vec<String>,
    /// Targeted but not eligible: reason → (count, up to 3 example EUIs).
    pub not_eligible: BTreeMap<String, (u64, Vec<String>)>,
    /// Eligible gateways that will wait for a FUOTA session to end.
    pub will_wait: Vec<(String, String)>,
    /// Targeted gateways (eligible or not).
    pub targeted: u64,
}

fn targeted(c: &Checked, g: &Candidate) -> bool {
    let t = &c.spec.target;
    let listed = !t.wireless_gateway_ids.is_empty() || !t.gateway_euis.is_empty();
    if listed
        && !t.wireless_gateway_ids.contains(&g.id)
        && !t
            .gateway_euis
            .iter()
            .any(|e| e.parse::<crate::eui::Eui>().is_ok_and(|e| e == g.eui))
    {
        return false;
    }
    if !t
        .tags
        .iter()
        .all(|tag| g.tags.iter().any(|(k, v)| *k == tag.key && *v == tag.value))
    {
        return false;
    }
    if !t.rf_regions.is_empty()
        && !g
            .rf_region
            .as_ref()
            .is_some_and(|r| t.rf_regions.contains(r))
    {
        return false;
    }
    if !t.models.is_empty()
        && !g
            .reported
            .as_ref()
            .is_some_and(|v| t.models.contains(&v.model))
    {
        return false;
    }
    true
}

/// Why a targeted gateway is not eligible, or `None` when it is.
fn reason(
    c: &Checked,
    hops: &[Hop],
    keys: &HashMap<String, u32>,
    g: &Candidate,
    now_us: i64,
    offline_us: i64,
) -> Option<String> {
    let Some(v) = &g.reported else {
        return Some("never polled CUPS".into());
    };
    let last = g
        .last_contact
        .as_deref()
        .and_then(|t| crate::app::parse_time(t).ok());
    if last.is_none_or(|t| now_us - t > offline_us) {
        return Some(format!(
            "offline: no CUPS contact for over {} h",
            offline_us / 3_600_000_000
        ));
    }
    if let Some(range) = &c.package_range {
        if !v
            .package
            .as_deref()
            .and_then(lenient_semver)
            .is_some_and(|p| range.matches(&p))
        {
            return Some(format!(
                "other version: PackageVersion {:?} is outside Target.PackageVersionRange",
                v.package.as_deref().unwrap_or("(none)")
            ));
        }
    }
    let Some(hop) = first_hop(hops, v) else {
        return Some(format!(
            "other version: reports {v}, which no definition updates"
        ));
    };
    let crc = keys.get(&hops[hop].definition_id).copied().unwrap_or(0);
    if !g.keys.contains(&crc) {
        return Some(format!(
            "lacks the signing key: no sig-N.key with CRC {crc:#010x} ({crc})"
        ));
    }
    if let Some(d) = &g.open_task {
        return Some(format!(
            "has an open task (definition {d}); it finishes or is deleted first"
        ));
    }
    None
}

/// Sorts the fleet into eligible and not. `keys` maps each hop's definition Id
/// to its SigKeyCrc; `busy` the gateways in a FUOTA session to its task.
pub fn eligibility(
    c: &Checked,
    hops: &[Hop],
    keys: &HashMap<String, u32>,
    fleet: &[Candidate],
    busy: &HashMap<String, String>,
    now_us: i64,
    offline_us: i64,
) -> Eligibility {
    let mut e = Eligibility::default();
    let mut seen = HashSet::new();
    for g in fleet.iter().filter(|g| targeted(c, g)) {
        if !seen.insert(&g.id) {
            continue;
        }
        e.targeted += 1;
        match reason(c, hops, keys, g, now_us, offline_us) {
            None => {
                if let Some(task) = busy.get(&g.id) {
                    e.will_wait.push((
                        g.id.clone(),
                        format!("active FUOTA session (task {task}): waits until it ends"),
                    ));
                }
                e.eligible.push(g.id.clone());
            }
            Some(why) => {
                let entry = e.not_eligible.entry(why).or_default();
                entry.0 += 1;
                if entry.1.len() < 3 {
                    entry.1.push(g.eui.to_string());
                }
            }
        }
    }
    e
}
