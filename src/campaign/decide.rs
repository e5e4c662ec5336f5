//! The campaign's decisions, pure: given a campaign's state, where each of its
//! gateways stands, the time and the gateways busy with FUOTA, which wave opens,
//! which gateways start (within `MaxInProgress`, `MaxStartsPerMinute` and the
//! maintenance windows), and whether the gate passes, pauses, aborts or the
//! campaign completes. `settle` turns a gateway's task outcome into its campaign
//! status. The job (`runner`) loads the inputs and persists the outputs.

use std::collections::HashMap;
use std::fmt;

use super::spec::{Checked, OnFailure};
use crate::firmware::task::{Current, Status as TaskStatus, Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Scheduled,
    Running,
    Paused,
    Completed,
    Cancelled,
    Aborted,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Scheduled,
        State::Running,
        State::Paused,
        State::Completed,
        State::Cancelled,
        State::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Scheduled => "Scheduled",
            State::Running => "Running",
            State::Paused => "Paused",
            State::Completed => "Completed",
            State::Cancelled => "Cancelled",
            State::Aborted => "Aborted",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Finished campaigns hold no definition and never run again (except a
    /// Completed one through retry-failed).
    pub fn is_finished(self) -> bool {
        matches!(self, State::Completed | State::Cancelled | State::Aborted)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one gateway of a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GwStatus {
    /// Its wave is not open yet.
    Waiting,
    /// Its wave is open; its task is not created yet (rate, window, FUOTA).
    Queued,
    /// Its task is open.
    InProgress,
    /// CUPS reports the target version (and the LNS agrees, when connected).
    Succeeded,
    Failed,
    /// CUPS reports the target version but the LNS `version` message disagrees.
    Mismatch,
    Cancelled,
}

impl GwStatus {
    pub const ALL: [GwStatus; 7] = [
        GwStatus::Waiting,
        GwStatus::Queued,
        GwStatus::InProgress,
        GwStatus::Succeeded,
        GwStatus::Failed,
        GwStatus::Mismatch,
        GwStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GwStatus::Waiting => "Waiting",
            GwStatus::Queued => "Queued",
            GwStatus::InProgress => "InProgress",
            GwStatus::Succeeded => "Succeeded",
            GwStatus::Failed => "Failed",
            GwStatus::Mismatch => "Mismatch",
            GwStatus::Cancelled => "Cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<GwStatus> {
        GwStatus::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }

    /// Still to be decided: counts against neither success nor failure.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            GwStatus::Waiting | GwStatus::Queued | GwStatus::InProgress | GwStatus::Mismatch
        )
    }
}

/// A queued gateway, as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: String,
    pub wave: u32,
}

/// How many of a campaign's gateways are in each wave and status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub HashMap<(u32, GwStatus), u64>);

impl Counts {
    pub fn get(&self, wave: u32, s: GwStatus) -> u64 {
        self.0.get(&(wave, s)).copied().unwrap_or(0)
    }

    pub fn in_wave(&self, wave: u32) -> u64 {
        self.0
            .iter()
            .filter(|((w, _), _)| *w == wave)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn open_in_wave(&self, wave: u32) -> u64 {
        self.0
            .iter()
            .filter(|((w, s), _)| *w == wave && s.is_open())
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total(&self, s: GwStatus) -> u64 {
        self.0
            .iter()
            .filter(|((_, st), _)| *st == s)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn any_open(&self) -> bool {
        self.0.iter().any(|((_, s), n)| s.is_open() && *n > 0)
    }
}

/// A campaign as the decision needs it.
#[derive(Debug, Clone)]
pub struct View<'a> {
    pub state: State,
    pub waves: u32,
    /// -1 before the first wave opens.
    pub open_wave: i64,
    pub waived_wave: i64,
    pub wave_opened_at_us: Option<i64>,
    pub spec: &'a Checked,
    pub counts: &'a Counts,
    /// Tasks the campaign created in the last minute.
    pub recent_starts: u64,
    /// The first queued gateways in opened waves, in wave order (at least as
    /// many as could start, plus those FUOTA holds).
    pub queued: &'a [Queued],
}

/// What the job does now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// A new state and its reason.
    pub state: Option<(State, String)>,
    /// Open this wave (its gateways become Queued).
    pub open_wave: Option<u32>,
    /// Create these gateways' tasks now, in this order.
    pub start: Vec<String>,
    /// Queued gateways that wait, and why (FUOTA).
    pub held: Vec<(String, String)>,
    /// Why nothing starts now, when that is the window or a rate.
    pub note: Option<String>,
}

pub const MINUTE_US: i64 = 60_000_000;

/// Decides one step of a campaign at `now_us`. `fuota_busy` maps the gateways
/// carrying an active FUOTA session to its Id.
pub fn decide(v: &View<'_>, now_us: i64, fuota_busy: &HashMap<String, String>) -> Decision {
    let mut d = Decision::default();
    match v.state {
        State::Scheduled => {
            if v.spec.start_us.is_none_or(|s| now_us >= s) {
                d.state = Some((State::Running, "its StartTime came".into()));
            }
            return d;
        }
        State::Running => {}
        _ => return d,
    }
    if v.open_wave < 0 {
        d.open_wave = Some(0);
        return d;
    }
    let w = v.open_wave as u32;
    if let Some(gate) = gate(v, w, now_us) {
        match gate {
            Gate::Pass if w + 1 < v.waves => {
                d.open_wave = Some(w + 1);
                return d;
            }
            Gate::Pass => {
                if !v.counts.any_open() {
                    d.state = Some((State::Completed, summary(v.counts)));
                    return d;
                }
            }
            Gate::Crossed(why) => {
                let to = match v.spec.spec.gate.on_failure {
                    OnFailure::Pause => State::Paused,
                    OnFailure::Abort => State::Aborted,
                };
                d.state = Some((to, why));
                return d;
            }
        }
    }
    starts(v, w, now_us, fuota_busy, &mut d);
    d
}

enum Gate {
    Pass,
    Crossed(String),
}

/// The gate of wave `w`: `None` while it is undecided.
fn gate(v: &View<'_>, w: u32, now_us: i64) -> Option<Gate> {
    let g = &v.spec.spec.gate;
    let n = v.counts.in_wave(w);
    let (ok, failed) = (
        v.counts.get(w, GwStatus::Succeeded),
        v.counts.get(w, GwStatus::Failed),
    );
    let open = v.counts.open_in_wave(w);
    if v.waived_wave == i64::from(w) {
        // The operator resumed past this wave's gate: it passes once nothing in
        // the wave is still open.
        return (open == 0).then_some(Gate::Pass);
    }
    if let Some(max) = g.max_failures {
        if failed > u64::from(max) {
            return Some(Gate::Crossed(format!(
                "wave {w}: {failed} of {n} gateways failed, over Gate.MaxFailures {max}"
            )));
        }
    }
    if let Some(p) = g.max_failure_percent {
        if failed * 100 > u64::from(p) * n {
            return Some(Gate::Crossed(format!(
                "wave {w}: {failed} of {n} gateways failed, over Gate.MaxFailurePercent {p}%"
            )));
        }
    }
    if ok * 100 >= u64::from(g.success_percent) * n {
        return Some(Gate::Pass);
    }
    if open == 0 {
        return Some(Gate::Crossed(format!(
            "wave {w}: {ok} of {n} gateways succeeded, below Gate.SuccessPercent {}%, and none is still open",
            g.success_percent
        )));
    }
    let opened = v.wave_opened_at_us.unwrap_or(now_us);
    if now_us - opened > g.within_minutes as i64 * MINUTE_US {
        return Some(Gate::Crossed(format!(
            "wave {w}: {ok} of {n} gateways succeeded within Gate.WithinMinutes {}, below Gate.SuccessPercent {}%",
            g.within_minutes, g.success_percent
        )));
    }
    None
}

/// Which queued gateways start now.
fn starts(
    v: &View<'_>,
    w: u32,
    now_us: i64,
    fuota_busy: &HashMap<String, String>,
    d: &mut Decision,
) {
    if !v.spec.window_open(now_us) {
        let next = v
            .spec
            .windows
            .as_ref()
            .and_then(|ws| ws.next_open(now_us))
            .map_or_else(|| "none within 8 days".into(), crate::app::format_unix_us);
        d.note = Some(format!(
            "outside the maintenance windows; the next opens at {next}"
        ));
        return;
    }
    let in_progress = v.counts.total(GwStatus::InProgress);
    let recent = v.recent_starts;
    let by_progress = u64::from(v.spec.max_in_progress()).saturating_sub(in_progress);
    let by_rate = u64::from(v.spec.max_starts_per_minute()).saturating_sub(recent);
    let mut room = by_progress.min(by_rate);
    for g in v.queued.iter().filter(|g| g.wave <= w) {
        if let Some(task) = fuota_busy.get(&g.id) {
            d.held.push((
                g.id.clone(),
                format!("waiting: the gateway carries FUOTA task {task}; a station restart would cut its multicast"),
            ));
            continue;
        }
        if room == 0 {
            d.note = Some(if by_progress <= by_rate {
                format!("MaxInProgress {} reached", v.spec.max_in_progress())
            } else {
                format!(
                    "MaxStartsPerMinute {} reached",
                    v.spec.max_starts_per_minute()
                )
            });
            break;
        }
        d.start.push(g.id.clone());
        room -= 1;
    }
}

/// "N succeeded, M failed" for the Completed reason.
fn summary(c: &Counts) -> String {
    let n = |s: GwStatus| c.total(s);
    format!(
        "every wave passed its gate: {} succeeded, {} failed, {} cancelled",
        n(GwStatus::Succeeded),
        n(GwStatus::Failed),
        n(GwStatus::Cancelled)
    )
}

/// The hops of a campaign, as `settle` needs them.
#[derive(Debug, Clone)]
pub struct Hop {
    pub definition_id: String,
    pub current: Current,
    pub update: Option<Version>,
}

/// The first hop whose current version the gateway reports, if any.
pub fn first_hop(hops: &[Hop], reported: &Version) -> Option<usize> {
    hops.iter().position(|h| h.current.matches(reported))
}

/// What the LNS face heard in the gateway's `version` message, while it is
/// connected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LnsVersion {
    pub station: Option<String>,
    pub package: Option<String>,
    pub model: Option<String>,
}

/// The fields where the LNS `version` disagrees with the CUPS report. Station's
/// `version` message carries the station string without the build date, so
/// it is compared as a prefix.
pub fn disagreement(cups: &Version, lns: &LnsVersion) -> Vec<&'static str> {
    let mut differ = vec![];
    if lns.package != cups.package {
        differ.push("PackageVersion");
    }
    if lns.model.as_deref() != Some(cups.model.as_str()) {
        differ.push("Model");
    }
    if !lns
        .station
        .as_deref()
        .is_some_and(|s| cups.station.starts_with(s))
    {
        differ.push("Station");
    }
    differ
}

/// What happens to an InProgress (or Mismatch) gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    Keep,
    /// Its hop completed and it now reports the next hop's version: create that task.
    NextHop(usize),
    Succeeded(String),
    Mismatch(String),
    Failed(String),
}

/// Settles one gateway from its task (status and reason; `None` if the task is
/// gone), what CUPS last reported and, when connected, what the LNS heard. A
/// gateway already in `Mismatch` needs the LNS to agree: losing its LNS link
/// does not make it a success.
pub fn settle(
    hops: &[Hop],
    task: Option<(&str, TaskStatus, &str)>,
    reported: Option<&Version>,
    lns: Option<&LnsVersion>,
    was_mismatch: bool,
) -> Settle {
    let Some((definition, status, reason)) = task else {
        return Settle::Failed("its task was deleted by the operator".into());
    };
    match status {
        TaskStatus::Failed => return Settle::Failed(reason.to_string()),
        TaskStatus::Completed => {}
        _ => return Settle::Keep,
    }
    let Some(reported) = reported else {
        return Settle::Keep;
    };
    let hop = hops.iter().position(|h| h.definition_id == definition);
    if let Some(next) = hop.map(|h| h + 1).filter(|&n| n < hops.len()) {
        if hops[next].current.matches(reported) {
            return Settle::NextHop(next);
        }
    }
    match lns.filter(|l| l.station.is_some()) {
        Some(l) => {
            let differ = disagreement(reported, l);
            if differ.is_empty() {
                Settle::Succeeded(format!("CUPS and the LNS both report {reported}"))
            } else {
                Settle::Mismatch(format!(
                    "CUPS reports {reported}, but the LNS version message differs in {}",
                    differ.join(", ")
                ))
            }
        }
        None if was_mismatch => Settle::Keep,
        None => Settle::Succeeded(format!("CUPS reports {reported}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::spec::{CampaignSpec, GateSpec, TargetSpec, WaveSpec};

    fn checked(gate: GateSpec, max_in_progress: Option<u32>, per_min: Option<u32>) -> Checked {
        CampaignSpec {
            name: None,
            definitions: vec!["d".into()],
            target: TargetSpec {
                models: vec!["m".into()],
                ..TargetSpec::default()
            },
            waves: vec![WaveSpec {
                percent: Some(100),
                ..WaveSpec::default()
            }],
            gate,
            max_in_progress,
            max_starts_per_minute: per_min,
            maintenance_windows: None,
            start_time: None,
            nudge: false,
        }
        .check()
        .unwrap()
    }

    fn counts(spec: &[(u32, GwStatus)]) -> Counts {
        let mut c = Counts::default();
        for &k in spec {
            *c.0.entry(k).or_default() += 1;
        }
        c
    }

    fn view<'a>(c: &'a Checked, n: &'a Counts, q: &'a [Queued], open: i64) -> View<'a> {
        View {
            state: State::Running,
            waves: 2,
            open_wave: open,
            waived_wave: -1,
            wave_opened_at_us: Some(0),
            spec: c,
            counts: n,
            recent_starts: 0,
            queued: q,
        }
    }

    #[test]
    fn the_next_wave_opens_only_through_the_gate() {
        use GwStatus::*;
        let c = checked(
            GateSpec {
                success_percent: 50,
                ..GateSpec::default()
            },
            None,
            None,
        );
        let g = counts(&[
            (0, Succeeded),
            (0, InProgress),
            (0, InProgress),
            (1, Waiting),
        ]);
        assert_eq!(
            decide(&view(&c, &g, &[], 0), 1, &HashMap::new()).open_wave,
            None
        );
        let g = counts(&[
            (0, Succeeded),
            (0, Succeeded),
            (0, InProgress),
            (1, Waiting),
        ]);
        assert_eq!(
            decide(&view(&c, &g, &[], 0), 1, &HashMap::new()).open_wave,
            Some(1)
        );
        let g = counts(&[(0, Succeeded), (0, Succeeded), (1, Failed), (1, Succeeded)]);
        let d = decide(&view(&c, &g, &[], 1), 1, &HashMap::new());
        assert_eq!(d.state.unwrap().0, State::Completed);
    }

    #[test]
    fn failures_over_the_threshold_pause_and_time_crosses_the_gate() {
        use GwStatus::*;
        let c = checked(
            GateSpec {
                max_failures: Some(1),
                ..GateSpec::default()
            },
            None,
            None,
        );
        let g = counts(&[(0, Failed), (0, Failed), (0, InProgress), (1, Waiting)]);
        let d = decide(&view(&c, &g, &[], 0), 1, &HashMap::new());
        assert_eq!(d.state.as_ref().unwrap().0, State::Paused, "{d:?}");
        assert!(d.state.unwrap().1.contains("MaxFailures 1"));
        let g = counts(&[(0, InProgress), (1, Waiting)]);
        let late = 24 * 60 * MINUTE_US + 1;
        let d = decide(&view(&c, &g, &[], 0), late, &HashMap::new());
        assert_eq!(d.state.unwrap().0, State::Paused);
    }

    #[test]
    fn starts_are_held_by_progress_rate_and_fuota() {
        use GwStatus::*;
        let c = checked(GateSpec::default(), Some(3), Some(2));
        let g = counts(&[
            (0, InProgress),
            (0, Queued),
            (0, Queued),
            (0, Queued),
            (0, Queued),
        ]);
        let q: Vec<super::Queued> = (1..5)
            .map(|i| super::Queued {
                id: format!("g{i}"),
                wave: 0,
            })
            .collect();
        let busy = HashMap::from([("g1".to_string(), "fuota-1".to_string())]);
        let d = decide(&view(&c, &g, &q, 0), 1, &busy);
        assert_eq!(
            d.start,
            vec!["g2", "g3"],
            "MaxInProgress 3 with one running"
        );
        assert_eq!(d.held.len(), 1);
        let g = counts(&[
            (0, Succeeded),
            (0, Queued),
            (0, Queued),
            (0, Queued),
            (0, Queued),
        ]);
        let mut v = view(&c, &g, &q, 0);
        v.recent_starts = 1;
        let d = decide(&v, 1, &HashMap::new());
        assert_eq!(
            d.start.len(),
            1,
            "MaxStartsPerMinute 2 with one start this minute"
        );
        v.recent_starts = 0;
        assert_eq!(decide(&v, 1, &HashMap::new()).start.len(), 2);
    }
}
