//! One device's way through a FUOTA task (end-devices.md §7–§8), as a pure state
//! machine: the step it is on, the AWS `FuotaDeviceStatus` its answers earned, and
//! the request it should get at its next class A downlink. The device's answers
//! move it on; a request that reached a gateway and got no answer by the device's
//! next uplink is a failed try, and after `max_attempts` of them the device is
//! left out with the reason, never holding up the others. `fuota::control` feeds
//! it uplinks and delivery reports and stores the result.

use crate::applayer::firmware::ImageStatus;

/// A DevVersionAns this long before the announced reboot is taken as after it.
const REBOOT_SLACK_US: i64 = 15_000_000;

/// The steps, in order (end-devices.md §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Waiting for an AppTimeReq (ForceDeviceResyncReq when none comes).
    Clock,
    GroupSetup,
    FragSetup,
    /// McClassC/BSessionReq, once the task's SessionTime is fixed.
    SessionSetup,
    /// In the multicast session until the last fragment is out.
    Session,
    FragStatus,
    UpgradeImage,
    Reboot,
    /// DevVersionReq after the reboot.
    Version,
    Done,
}

impl Step {
    pub const ALL: [Step; 10] = [
        Step::Clock,
        Step::GroupSetup,
        Step::FragSetup,
        Step::SessionSetup,
        Step::Session,
        Step::FragStatus,
        Step::UpgradeImage,
        Step::Reboot,
        Step::Version,
        Step::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Clock => "ClockSync",
            Step::GroupSetup => "McGroupSetup",
            Step::FragSetup => "FragSessionSetup",
            Step::SessionSetup => "McSessionSetup",
            Step::Session => "MulticastSession",
            Step::FragStatus => "FragSessionStatus",
            Step::UpgradeImage => "DevUpgradeImage",
            Step::Reboot => "DevReboot",
            Step::Version => "DevVersion",
            Step::Done => "Done",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The request this step sends, by name (for reasons).
    fn request_name(self) -> &'static str {
        match self {
            Step::Clock => "ForceDeviceResyncReq",
            Step::GroupSetup => "McGroupSetupReq",
            Step::FragSetup => "FragSessionSetupReq",
            Step::SessionSetup => "McClassCSessionReq",
            Step::FragStatus => "FragSessionStatusReq",
            Step::UpgradeImage => "DevUpgradeImageReq",
            Step::Reboot => "DevRebootCountdownReq",
            Step::Version => "DevVersionReq",
            Step::Session | Step::Done => "nothing",
        }
    }
}

/// AWS's `FuotaDeviceStatus` (botocore iotwireless 2020-11-22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceStatus {
    Initial,
    PackageNotSupported,
    FragAlgoUnsupported,
    NotEnoughMemory,
    FragIndexUnsupported,
    WrongDescriptor,
    SessionCntReplay,
    MissingFrag,
    MemoryError,
    MicError,
    Successful,
}

impl DeviceStatus {
    pub const ALL: [DeviceStatus; 11] = [
        DeviceStatus::Initial,
        DeviceStatus::PackageNotSupported,
        DeviceStatus::FragAlgoUnsupported,
        DeviceStatus::NotEnoughMemory,
        DeviceStatus::FragIndexUnsupported,
        DeviceStatus::WrongDescriptor,
        DeviceStatus::SessionCntReplay,
        DeviceStatus::MissingFrag,
        DeviceStatus::MemoryError,
        DeviceStatus::MicError,
        DeviceStatus::Successful,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Initial => "Initial",
            DeviceStatus::PackageNotSupported => "Package_Not_Supported",
            DeviceStatus::FragAlgoUnsupported => "FragAlgo_unsupported",
            DeviceStatus::NotEnoughMemory => "Not_enough_memory",
            DeviceStatus::FragIndexUnsupported => "FragIndex_unsupported",
            DeviceStatus::WrongDescriptor => "Wrong_descriptor",
            DeviceStatus::SessionCntReplay => "SessionCnt_replay",
            DeviceStatus::MissingFrag => "MissingFrag",
            DeviceStatus::MemoryError => "MemoryError",
            DeviceStatus::MicError => "MICError",
            DeviceStatus::Successful => "Successful",
        }
    }

    pub fn parse(s: &str) -> Option<DeviceStatus> {
        DeviceStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A device's stored state in a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub step: Step,
    pub status: DeviceStatus,
    pub reason: Option<String>,
    /// The status is final: the device takes no further part.
    pub done: bool,
    /// Tries of this step's request that reached a gateway.
    pub attempts: u8,
    /// The last try reached a gateway; the device's next uplink must answer it.
    pub awaiting: bool,
    /// Unix µs the device said it reboots.
    pub reboot_at_us: Option<i64>,
}

impl State {
    pub fn new() -> State {
        State {
            step: Step::Clock,
            status: DeviceStatus::Initial,
            reason: None,
            done: false,
            attempts: 0,
            awaiting: false,
            reboot_at_us: None,
        }
    }

    fn advance(&mut self, to: Step) {
        self.step = to;
        self.attempts = 0;
        self.awaiting = false;
    }

    /// Ends the device's part with `status` and why.
    pub fn finish(&mut self, status: DeviceStatus, reason: impl Into<String>) {
        self.status = status;
        self.reason = Some(reason.into());
        self.done = true;
        self.awaiting = false;
        self.step = Step::Done;
    }

    /// Leaves the device out at its current step (its status stays as it is).
    pub fn exclude(&mut self, reason: impl Into<String>) {
        self.reason = Some(reason.into());
        self.done = true;
        self.awaiting = false;
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// An answer from the device, from any of the packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An AppTimeReq (answered by `control`) or a DeviceTimeReq: the clock is set.
    ClockSynced,
    GroupSetup {
        group: u8,
        id_error: bool,
    },
    FragSetup {
        frag_index: u8,
        algo_unsupported: bool,
        not_enough_memory: bool,
        index_unsupported: bool,
        wrong_descriptor: bool,
    },
    Session {
        group: u8,
        dr_error: bool,
        freq_error: bool,
        group_undefined: bool,
    },
    FragStatus {
        frag_index: u8,
        missing: u8,
        memory_error: bool,
    },
    UpgradeImage(ImageStatus),
    Reboot {
        seconds: u32,
    },
    Version {
        fw: u32,
    },
}

/// What the task tells every device's machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    /// TS005 McGroupID and TS004 FragIndex the task uses.
    pub group: u8,
    pub frag_index: u8,
    /// SessionTime is fixed (McClassC/BSessionReq can be sent).
    pub session_fixed: bool,
    /// The last fragment is out: the status step may begin.
    pub frags_done: bool,
    pub expected_version: Option<u32>,
    pub max_attempts: u8,
    pub now_us: i64,
}

/// The request to send the device now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    ForceResync,
    GroupSetup,
    FragSetup,
    SessionSetup,
    FragStatus,
    UpgradeImage,
    Reboot,
    Version,
}

/// Applies one answer. `Err` says why it was ignored (a duplicate, a late answer,
/// another group or session): the state is then unchanged.
pub fn on_answer(s: &mut State, a: &Answer, t: &Task) -> Result<(), String> {
    if s.done {
        return Err(format!("{} after the device's part ended", name(a)));
    }
    let expect = |step: Step| -> Result<(), String> {
        if s.step == step {
            Ok(())
        } else {
            Err(format!(
                "{} while the device is at {} (duplicate or late)",
                name(a),
                s.step.as_str()
            ))
        }
    };
    match *a {
        Answer::ClockSynced => {
            if s.step == Step::Clock {
                s.advance(Step::GroupSetup);
            }
        }
        Answer::GroupSetup { group, id_error } => {
            expect(Step::GroupSetup)?;
            same("McGroupID", group, t.group)?;
            if id_error {
                s.finish(
                    DeviceStatus::PackageNotSupported,
                    format!(
                        "McGroupSetupAns IDerror: the device has no multicast group slot {group}"
                    ),
                );
            } else {
                s.advance(Step::FragSetup);
            }
        }
        Answer::FragSetup {
            frag_index,
            algo_unsupported,
            not_enough_memory,
            index_unsupported,
            wrong_descriptor,
        } => {
            expect(Step::FragSetup)?;
            same("FragIndex", frag_index, t.frag_index)?;
            let refused = [
                (
                    algo_unsupported,
                    DeviceStatus::FragAlgoUnsupported,
                    "the fragmentation algorithm is not supported",
                ),
                (
                    not_enough_memory,
                    DeviceStatus::NotEnoughMemory,
                    "not enough memory for the image",
                ),
                (
                    index_unsupported,
                    DeviceStatus::FragIndexUnsupported,
                    "the fragmentation session index is not supported",
                ),
                (
                    wrong_descriptor,
                    DeviceStatus::WrongDescriptor,
                    "the device refuses the Descriptor",
                ),
            ];
            match refused.iter().find(|r| r.0) {
                Some(&(_, status, why)) => s.finish(status, format!("FragSessionSetupAns: {why}")),
                None => s.advance(Step::SessionSetup),
            }
        }
        Answer::Session {
            group,
            dr_error,
            freq_error,
            group_undefined,
        } => {
            expect(Step::SessionSetup)?;
            same("McGroupID", group, t.group)?;
            let bit = [
                (dr_error, "DR error: the device cannot receive the session's data rate"),
                (freq_error, "Freq error: the device cannot receive the session's frequency"),
                (group_undefined, "McGroup undefined: the McGroupSetupReq did not take, or SessionTime had passed"),
            ];
            match bit.iter().find(|b| b.0) {
                Some((_, why)) => s.finish(
                    DeviceStatus::PackageNotSupported,
                    format!("session answer: {why}"),
                ),
                None => s.advance(Step::Session),
            }
        }
        Answer::FragStatus {
            frag_index,
            missing,
            memory_error,
        } => {
            if !(s.step == Step::FragStatus || (s.step == Step::Session && t.frags_done)) {
                expect(Step::FragStatus)?;
            }
            same("FragIndex", frag_index, t.frag_index)?;
            if memory_error {
                s.finish(
                    DeviceStatus::MemoryError,
                    "FragSessionStatusAns: not enough memory to recover the lost fragments",
                );
            } else if missing > 0 {
                s.finish(
                    DeviceStatus::MissingFrag,
                    format!(
                        "FragSessionStatusAns: {missing} fragments still missing after the session"
                    ),
                );
            } else if t.expected_version.is_some() {
                s.advance(Step::UpgradeImage);
            } else {
                s.finish(
                    DeviceStatus::Successful,
                    "image complete (no ExpectedFirmwareVersion to check)",
                );
            }
        }
        Answer::UpgradeImage(img) => {
            expect(Step::UpgradeImage)?;
            let want = t.expected_version.unwrap_or(0);
            match img {
                ImageStatus::Ready { next_version } if next_version == want => {
                    s.advance(Step::Reboot)
                }
                ImageStatus::Ready { next_version } => s.finish(
                    DeviceStatus::WrongDescriptor,
                    format!("DevUpgradeImageAns: the stored image is version 0x{next_version:08x}, the task expects 0x{want:08x}"),
                ),
                ImageStatus::NoImage => s.finish(
                    DeviceStatus::MemoryError,
                    "DevUpgradeImageAns: no image stored after a complete session (image lost)",
                ),
                ImageStatus::Corrupted => s.finish(
                    DeviceStatus::MicError,
                    "DevUpgradeImageAns: the image is corrupted or its signature is wrong",
                ),
                ImageStatus::OtherHardware => s.finish(
                    DeviceStatus::WrongDescriptor,
                    "DevUpgradeImageAns: the image is for other hardware",
                ),
            }
        }
        Answer::Reboot { seconds } => {
            expect(Step::Reboot)?;
            if seconds == 0 {
                s.finish(
                    DeviceStatus::MemoryError,
                    "DevRebootCountdownAns 0: the device cannot reboot into the new image",
                );
            } else {
                s.reboot_at_us = Some(t.now_us + i64::from(seconds) * 1_000_000);
                s.advance(Step::Version);
            }
        }
        Answer::Version { fw } => {
            // An unsolicited DevVersionAns after the reboot counts as the answer.
            if !matches!(s.step, Step::Version | Step::Reboot) {
                return Err(format!(
                    "DevVersionAns while the device is at {}",
                    s.step.as_str()
                ));
            }
            // The announced time is the device's countdown from when it answered,
            // counted here from when the answer arrived: a little late.
            if s.reboot_at_us
                .is_some_and(|at| t.now_us < at - REBOOT_SLACK_US)
            {
                return Err("DevVersionAns before the announced reboot".into());
            }
            let want = t.expected_version.unwrap_or(0);
            if fw == want {
                s.finish(
                    DeviceStatus::Successful,
                    format!("the device runs firmware 0x{fw:08x} after the reboot"),
                );
            } else {
                s.finish(
                    DeviceStatus::MemoryError,
                    format!("image not installed: after the reboot the device runs 0x{fw:08x}, not 0x{want:08x}"),
                );
            }
        }
    }
    Ok(())
}

fn same(field: &str, got: u8, want: u8) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("answer for {field} {got}; this task uses {want}"))
    }
}

fn name(a: &Answer) -> &'static str {
    match a {
        Answer::ClockSynced => "AppTimeReq",
        Answer::GroupSetup { .. } => "McGroupSetupAns",
        Answer::FragSetup { .. } => "FragSessionSetupAns",
        Answer::Session { .. } => "McClassCSessionAns",
        Answer::FragStatus { .. } => "FragSessionStatusAns",
        Answer::UpgradeImage(_) => "DevUpgradeImageAns",
        Answer::Reboot { .. } => "DevRebootCountdownAns",
        Answer::Version { .. } => "DevVersionAns",
    }
}

/// After the uplink's answers are applied: judges an unanswered try, then says
/// what to send. An uplink that follows a delivered try without its answer
/// spends that try; the last one leaves the device out.
pub fn on_uplink(s: &mut State, t: &Task) -> Option<Want> {
    if s.done {
        return None;
    }
    if s.awaiting {
        s.awaiting = false;
        if s.attempts >= t.max_attempts {
            give_up(s, t.max_attempts);
            return None;
        }
    }
    if s.step == Step::Session && t.frags_done {
        s.advance(Step::FragStatus);
    }
    match s.step {
        Step::Clock => Some(Want::ForceResync),
        Step::GroupSetup => Some(Want::GroupSetup),
        Step::FragSetup => Some(Want::FragSetup),
        Step::SessionSetup => t.session_fixed.then_some(Want::SessionSetup),
        Step::Session | Step::Done => None,
        Step::FragStatus => Some(Want::FragStatus),
        Step::UpgradeImage => Some(Want::UpgradeImage),
        Step::Reboot => Some(Want::Reboot),
        Step::Version => match s.reboot_at_us {
            Some(at) if t.now_us < at => None,
            _ => Some(Want::Version),
        },
    }
}

/// The try of the current step reached a gateway.
pub fn delivered(s: &mut State, step: Step) {
    if !s.done && s.step == step {
        s.attempts = s.attempts.saturating_add(1);
        s.awaiting = true;
    }
}

/// The device did not answer `tries` tries: its status per end-devices.md §7.1.
pub fn give_up(s: &mut State, tries: u8) {
    let why = format!("no answer to {} after {tries} tries", s.step.request_name());
    match s.step {
        Step::FragStatus => s.finish(DeviceStatus::MissingFrag, why),
        Step::UpgradeImage | Step::Reboot | Step::Version => s.finish(
            DeviceStatus::MemoryError,
            format!("new firmware not confirmed: {why}"),
        ),
        _ => s.exclude(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task {
            group: 0,
            frag_index: 0,
            session_fixed: false,
            frags_done: false,
            expected_version: Some(0x0201_0000),
            max_attempts: 3,
            now_us: 1_000_000,
        }
    }

    fn frag_ok() -> Answer {
        Answer::FragSetup {
            frag_index: 0,
            algo_unsupported: false,
            not_enough_memory: false,
            index_unsupported: false,
            wrong_descriptor: false,
        }
    }

    #[test]
    fn the_whole_way_to_successful() {
        let mut t = task();
        let mut s = State::new();
        assert_eq!(on_uplink(&mut s, &t), Some(Want::ForceResync));
        on_answer(&mut s, &Answer::ClockSynced, &t).unwrap();
        assert_eq!(on_uplink(&mut s, &t), Some(Want::GroupSetup));
        delivered(&mut s, Step::GroupSetup);
        on_answer(
            &mut s,
            &Answer::GroupSetup {
                group: 0,
                id_error: false,
            },
            &t,
        )
        .unwrap();
        assert_eq!(on_uplink(&mut s, &t), Some(Want::FragSetup));
        on_answer(&mut s, &frag_ok(), &t).unwrap();
        // SessionTime not fixed yet: nothing to send, nothing spent.
        assert_eq!(on_uplink(&mut s, &t), None);
        t.session_fixed = true;
        assert_eq!(on_uplink(&mut s, &t), Some(Want::SessionSetup));
        let ok = Answer::Session {
            group: 0,
            dr_error: false,
            freq_error: false,
            group_undefined: false,
        };
        on_answer(&mut s, &ok, &t).unwrap();
        assert_eq!(on_uplink(&mut s, &t), None);
        t.frags_done = true;
        assert_eq!(on_uplink(&mut s, &t), Some(Want::FragStatus));
        on_answer(
            &mut s,
            &Answer::FragStatus {
                frag_index: 0,
                missing: 0,
                memory_error: false,
            },
            &t,
        )
        .unwrap();
        assert_eq!(on_uplink(&mut s, &t), Some(Want::UpgradeImage));
        on_answer(
            &mut s,
            &Answer::UpgradeImage(ImageStatus::Ready {
                next_version: 0x0201_0000,
            }),
            &t,
        )
        .unwrap();
        assert_eq!(on_uplink(&mut s, &t), Some(Want::Reboot));
        on_answer(&mut s, &Answer::Reboot { seconds: 60 }, &t).unwrap();
        // Before the reboot: wait; an early DevVersionAns (the old firmware) is ignored.
        assert_eq!(on_uplink(&mut s, &t), None);
        assert!(on_answer(&mut s, &Answer::Version { fw: 1 }, &t).is_err());
        t.now_us += 61_000_000;
        assert_eq!(on_uplink(&mut s, &t), Some(Want::Version));
        on_answer(&mut s, &Answer::Version { fw: 0x0201_0000 }, &t).unwrap();
        assert_eq!((s.status, s.done), (DeviceStatus::Successful, true));
    }

    #[test]
    fn refusals_map_to_aws_names() {
        let t = task();
        let mut s = State {
            step: Step::FragSetup,
            ..State::new()
        };
        let mem = Answer::FragSetup {
            frag_index: 0,
            algo_unsupported: false,
            not_enough_memory: true,
            index_unsupported: false,
            wrong_descriptor: false,
        };
        on_answer(&mut s, &mem, &t).unwrap();
        assert_eq!(s.status, DeviceStatus::NotEnoughMemory);
        let mut s = State {
            step: Step::Session,
            ..State::new()
        };
        let t2 = Task {
            frags_done: true,
            ..t
        };
        on_answer(
            &mut s,
            &Answer::FragStatus {
                frag_index: 0,
                missing: 7,
                memory_error: false,
            },
            &t2,
        )
        .unwrap();
        assert_eq!(s.status, DeviceStatus::MissingFrag);
        assert!(s.reason.as_deref().unwrap().contains("7 fragments"));
        let mut s = State {
            step: Step::Version,
            ..State::new()
        };
        on_answer(&mut s, &Answer::Version { fw: 0x0100_0000 }, &t).unwrap();
        assert_eq!(s.status, DeviceStatus::MemoryError);
        assert!(s.reason.as_deref().unwrap().contains("0x01000000"));
    }

    #[test]
    fn wrong_group_index_duplicates_and_late_answers_are_ignored() {
        let t = task();
        let mut s = State {
            step: Step::GroupSetup,
            ..State::new()
        };
        let e = on_answer(
            &mut s,
            &Answer::GroupSetup {
                group: 2,
                id_error: false,
            },
            &t,
        )
        .unwrap_err();
        assert!(e.contains("McGroupID 2"), "{e}");
        on_answer(
            &mut s,
            &Answer::GroupSetup {
                group: 0,
                id_error: false,
            },
            &t,
        )
        .unwrap();
        let before = s.clone();
        let e = on_answer(
            &mut s,
            &Answer::GroupSetup {
                group: 0,
                id_error: false,
            },
            &t,
        )
        .unwrap_err();
        assert!(e.contains("duplicate"), "{e}");
        assert_eq!(s, before, "an ignored answer changes nothing");
        s.step = Step::FragSetup;
        let other = Answer::FragSetup {
            frag_index: 1,
            algo_unsupported: false,
            not_enough_memory: false,
            index_unsupported: false,
            wrong_descriptor: false,
        };
        let before = s.clone();
        let e = on_answer(&mut s, &other, &t).unwrap_err();
        assert!(e.contains("FragIndex 1"), "{e}");
        assert_eq!(s, before);
    }

    #[test]
    fn only_delivered_tries_count_and_the_last_one_leaves_the_device_out() {
        let t = task();
        let mut s = State {
            step: Step::GroupSetup,
            ..State::new()
        };
        // Three uplinks whose downlinks never reached a gateway: nothing spent.
        for _ in 0..3 {
            assert_eq!(on_uplink(&mut s, &t), Some(Want::GroupSetup));
        }
        assert_eq!(s.attempts, 0);
        for _ in 0..3 {
            assert_eq!(on_uplink(&mut s, &t), Some(Want::GroupSetup));
            delivered(&mut s, Step::GroupSetup);
        }
        assert_eq!(on_uplink(&mut s, &t), None);
        assert!(s.done);
        assert_eq!(s.status, DeviceStatus::Initial);
        assert_eq!(
            s.reason.as_deref(),
            Some("no answer to McGroupSetupReq after 3 tries")
        );
    }
}
