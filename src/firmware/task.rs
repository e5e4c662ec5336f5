//! The update task state machine and definition matching, as pure functions over
//! plain data: no I/O, no clock, no database. `plan` takes what a poll reported,
//! the gateway's open task (if any) and the definitions whose CurrentVersion it
//! matches, and returns every status change and whether to deliver an update.
//!
//! States (operator-api.md): PENDING (created, not delivered) → IN_PROGRESS (first
//! delivery) → FIRST_RETRY → SECOND_RETRY (re-deliveries while the gateway still
//! reports CurrentVersion) → FAILED; any delivered state → COMPLETED once the
//! gateway reports UpdateVersion (or, with no UpdateVersion, anything other than
//! CurrentVersion). When two definitions match, the one created first wins.

use std::fmt;

use super::range::VersionRange;

/// The most times one task's update is sent: IN_PROGRESS, FIRST_RETRY and
/// SECOND_RETRY each send it once. The store enforces it too, against races.
pub const MAX_DELIVERIES: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    InProgress,
    FirstRetry,
    SecondRetry,
    Completed,
    Failed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::InProgress,
        Status::FirstRetry,
        Status::SecondRetry,
        Status::Completed,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::InProgress => "IN_PROGRESS",
            Status::FirstRetry => "FIRST_RETRY",
            Status::SecondRetry => "SECOND_RETRY",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_open(self) -> bool {
        !matches!(self, Status::Completed | Status::Failed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a gateway runs, as CUPS reports it: `station`, `package`, `model`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub station: String,
    pub package: Option<String>,
    pub model: String,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Station {:?}, PackageVersion {:?}, Model {:?}",
            self.station,
            self.package.as_deref().unwrap_or("(none)"),
            self.model
        )
    }
}

/// The versions a definition updates: AWS's exact `CurrentVersion`, or our
/// `CurrentVersionRange`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    Exact(Version),
    Range(VersionRange),
}

impl Current {
    pub fn matches(&self, v: &Version) -> bool {
        match self {
            Current::Exact(e) => e == v,
            Current::Range(r) => r.matches(v),
        }
    }
}

impl fmt::Display for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Current::Exact(v) => v.fmt(f),
            Current::Range(r) => r.fmt(f),
        }
    }
}

/// The parts of a task definition the state machine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub id: String,
    pub key_crc: u32,
    pub current: Current,
    pub update: Option<Version>,
}

/// A gateway's open task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTask {
    pub id: i64,
    pub status: Status,
    pub definition: Definition,
}

/// What the gateway reported on this poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub version: Version,
    pub keys: Vec<u32>,
}

/// Which task a change is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskRef {
    Existing(i64),
    /// Created on this poll from the definition with this id.
    New,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub task: TaskRef,
    pub definition_id: String,
    /// `None` for a task created on this poll.
    pub from: Option<Status>,
    pub to: Status,
    pub reason: String,
    /// Send this definition's update in this poll's answer.
    pub deliver: bool,
}

/// Everything one poll does to tasks. At most one change delivers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    /// The change whose update goes into this answer.
    pub fn delivery(&self) -> Option<&Change> {
        self.changes.iter().find(|c| c.deliver)
    }
}

fn reached(reported: &Version, def: &Definition) -> bool {
    match &def.update {
        Some(u) => reported == u,
        None => !def.current.matches(reported),
    }
}

/// One transition: the status a task moves to on this poll, whether the update is
/// sent, and why. Terminal states never change.
pub fn step(status: Status, def: &Definition, r: &Reported) -> (Status, bool, String) {
    use Status::*;
    let v = &r.version;
    if !status.is_open() {
        return (status, false, "task is closed".into());
    }
    // Before anything was sent, "done" needs an explicit UpdateVersion: without
    // one, a gateway on some other version is simply not a match yet.
    if reached(v, def) && (status != Pending || def.update.is_some()) {
        let why = match status {
            Pending => "gateway already reports the target version; nothing to send",
            _ => "gateway reports the target version",
        };
        return (Completed, false, why.into());
    }
    if !def.current.matches(v) {
        return match status {
            Pending => (
                Pending,
                false,
                format!(
                    "waiting: gateway reports {v}, this definition updates {}",
                    def.current
                ),
            ),
            _ => (
                Failed,
                false,
                format!("gateway reports an unexpected version: {v}"),
            ),
        };
    }
    if !r.keys.contains(&def.key_crc) {
        return (
            status,
            false,
            format!(
                "gateway lacks the signing key: it holds key CRCs {:?}, the update is signed with {} ({:#010x}); install that sig-N.key on the gateway",
                r.keys, def.key_crc, def.key_crc
            ),
        );
    }
    match status {
        Pending => (InProgress, true, "update sent (attempt 1 of 3)".into()),
        InProgress => (
            FirstRetry,
            true,
            "gateway still reports CurrentVersion; update sent again (attempt 2 of 3)".into(),
        ),
        FirstRetry => (
            SecondRetry,
            true,
            "gateway still reports CurrentVersion; update sent again (attempt 3 of 3)".into(),
        ),
        SecondRetry => (
            Failed,
            false,
            "gateway still reports CurrentVersion after 3 deliveries; giving up".into(),
        ),
        Completed | Failed => unreachable!("closed states return above"),
    }
}

/// Plans one poll. `candidates` are the auto-create definitions whose
/// CurrentVersion equals the reported version and that this gateway has no task
/// for yet; the one created first (lowest position in the slice) wins.
pub fn plan(open: Option<&OpenTask>, candidates: &[Definition], r: &Reported) -> Plan {
    let mut changes = Vec::new();
    let mut gateway_free = true;
    if let Some(t) = open {
        let (to, deliver, reason) = step(t.status, &t.definition, r);
        // Recorded even when the status stays, so StatusReason always says why.
        changes.push(Change {
            task: TaskRef::Existing(t.id),
            definition_id: t.definition.id.clone(),
            from: Some(t.status),
            to,
            reason,
            deliver,
        });
        gateway_free = !to.is_open();
    }
    // A free gateway takes the next matching definition: the next hop of a
    // multi-hop path is created on the same poll that completed the previous one.
    if gateway_free {
        let done = changes.first().map(|c| c.definition_id.clone());
        if let Some(def) = candidates.iter().find(|d| Some(&d.id) != done.as_ref()) {
            let (to, deliver, reason) = step(Status::Pending, def, r);
            changes.push(Change {
                task: TaskRef::New,
                definition_id: def.id.clone(),
                from: None,
                to,
                reason,
                deliver,
            });
        }
    }
    Plan { changes }
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    fn v(package: &str) -> Version {
        Version {
            station: "2.0.6(rpi/std) 2022-01-21 10:00:00".into(),
            package: Some(package.into()),
            model: "rpi".into(),
        }
    }

    fn def(id: &str, from: &str, to: Option<&str>) -> Definition {
        Definition {
            id: id.into(),
            key_crc: 0x1D1E_9F14,
            current: Current::Exact(v(from)),
            update: to.map(v),
        }
    }

    #[test]
    fn a_range_definition_takes_every_version_in_its_range() {
        let range = VersionRange::parse("r", ">=1.0.0, <1.2.0", "2.0.6*", "rpi").unwrap();
        let d = Definition {
            current: Current::Range(range),
            ..def("d", "1.0.0", Some("1.2.0"))
        };
        let r = |p: &str| Reported {
            version: v(p),
            keys: vec![0x1D1E_9F14],
        };
        assert_eq!(step(Pending, &d, &r("1.1.3")).0, InProgress);
        assert_eq!(step(Pending, &d, &r("1.0.0")).0, InProgress);
        assert_eq!(step(Pending, &d, &r("0.9.0")).0, Pending);
        assert_eq!(step(InProgress, &d, &r("1.2.0")).0, Completed);
        assert_eq!(step(InProgress, &d, &r("1.1.3")).0, FirstRetry);
        assert_eq!(step(InProgress, &d, &r("2.0.0")).0, Failed);
    }

    fn rep(package: &str) -> Reported {
        Reported {
            version: v(package),
            keys: vec![0x1D1E_9F14],
        }
    }

    #[test]
    fn every_transition_from_the_table() {
        let d = def("d", "1.0.0", Some("1.0.1"));
        let cases = [
            (Pending, "1.0.0", InProgress, true),
            (Pending, "1.0.1", Completed, false),
            (Pending, "0.9.0", Pending, false),
            (InProgress, "1.0.1", Completed, false),
            (InProgress, "1.0.0", FirstRetry, true),
            (InProgress, "7.7.7", Failed, false),
            (FirstRetry, "1.0.1", Completed, false),
            (FirstRetry, "1.0.0", SecondRetry, true),
            (FirstRetry, "7.7.7", Failed, false),
            (SecondRetry, "1.0.1", Completed, false),
            (SecondRetry, "1.0.0", Failed, false),
            (SecondRetry, "7.7.7", Failed, false),
            (Completed, "1.0.0", Completed, false),
            (Failed, "1.0.0", Failed, false),
        ];
        for (from, reported, to, deliver) in cases {
            let (got, d2, reason) = step(from, &d, &rep(reported));
            assert_eq!((got, d2), (to, deliver), "{from} with {reported}: {reason}");
            assert!(!reason.is_empty());
        }
    }

    #[test]
    fn without_update_version_any_other_version_completes() {
        let d = def("d", "1.0.0", None);
        assert_eq!(step(InProgress, &d, &rep("whatever")).0, Completed);
        assert_eq!(step(InProgress, &d, &rep("1.0.0")).0, FirstRetry);
        let mut other_model = rep("1.0.0");
        other_model.version.model = "corecell".into();
        assert_eq!(step(InProgress, &d, &other_model).0, Completed);
    }

    #[test]
    fn pending_without_update_version_waits_for_current_version() {
        let d = def("d", "1.0.0", None);
        assert_eq!(step(Pending, &d, &rep("0.9.0")).0, Pending);
        assert_eq!(step(Pending, &d, &rep("1.0.0")).0, InProgress);
    }

    #[test]
    fn a_gateway_without_the_key_waits_with_a_reason() {
        let d = def("d", "1.0.0", Some("1.0.1"));
        let mut r = rep("1.0.0");
        r.keys = vec![7];
        let (to, deliver, reason) = step(Pending, &d, &r);
        assert_eq!((to, deliver), (Pending, false));
        assert!(
            reason.contains("lacks the signing key") && reason.contains("488546068"),
            "{reason}"
        );
        // A retry is also held back, not counted, while the key is missing.
        assert_eq!(step(FirstRetry, &d, &r).0, FirstRetry);
    }

    #[test]
    fn package_null_never_matches_a_definition() {
        let d = def("d", "1.0.0", Some("1.0.1"));
        let mut r = rep("1.0.0");
        r.version.package = None;
        assert_eq!(step(Pending, &d, &r).0, Pending);
    }

    #[test]
    fn auto_create_picks_the_first_candidate_and_delivers_at_once() {
        let a = def("a", "1.0.0", Some("1.0.1"));
        let b = def("b", "1.0.0", Some("2.0.0"));
        let p = plan(None, &[a, b], &rep("1.0.0"));
        assert_eq!(p.changes.len(), 1);
        let c = &p.changes[0];
        assert_eq!(
            (c.task.clone(), c.definition_id.as_str(), c.from, c.to),
            (TaskRef::New, "a", None, InProgress)
        );
        assert!(p.delivery().is_some());
    }

    #[test]
    fn completing_one_hop_creates_the_next_on_the_same_poll() {
        let hop1 = def("hop1", "1.0.0", Some("1.0.1"));
        let hop2 = def("hop2", "1.0.1", Some("1.0.2"));
        let open = OpenTask {
            id: 9,
            status: InProgress,
            definition: hop1,
        };
        let p = plan(Some(&open), &[hop2], &rep("1.0.1"));
        assert_eq!(p.changes.len(), 2);
        assert_eq!(
            (p.changes[0].task.clone(), p.changes[0].to),
            (TaskRef::Existing(9), Completed)
        );
        assert_eq!(
            (p.changes[1].definition_id.as_str(), p.changes[1].to),
            ("hop2", InProgress)
        );
        assert_eq!(p.delivery().unwrap().definition_id, "hop2");
    }

    #[test]
    fn an_open_task_blocks_new_ones() {
        let open = OpenTask {
            id: 1,
            status: InProgress,
            definition: def("x", "1.0.0", Some("1.0.1")),
        };
        let other = def("y", "1.0.0", Some("9.9.9"));
        let p = plan(Some(&open), &[other], &rep("1.0.0"));
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].to, FirstRetry);
    }

    #[test]
    fn a_failed_task_does_not_restart_itself() {
        let open = OpenTask {
            id: 1,
            status: SecondRetry,
            definition: def("x", "1.0.0", Some("1.0.1")),
        };
        // The same definition is no candidate (the store excludes definitions the
        // gateway already had a task for); even if passed, it is skipped.
        let p = plan(
            Some(&open),
            std::slice::from_ref(&open.definition),
            &rep("1.0.0"),
        );
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].to, Failed);
        assert!(p.delivery().is_none());
    }
}
