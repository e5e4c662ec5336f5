//! The life of a FUOTA task as AWS names it: `Pending` (being set up) →
//! `FuotaSession_Waiting` (started, waiting for its start time) → `In_FuotaSession`
//! (fragments going out) → `FuotaDone`; `Delete_Waiting` while a deleted task's
//! sending stops. One transition function, pure; the store persists its result and
//! the scheduler acts on it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    SessionWaiting,
    InSession,
    Done,
    DeleteWaiting,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "Pending",
            Status::SessionWaiting => "FuotaSession_Waiting",
            Status::InSession => "In_FuotaSession",
            Status::Done => "FuotaDone",
            Status::DeleteWaiting => "Delete_Waiting",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::SessionWaiting,
            Status::InSession,
            Status::Done,
            Status::DeleteWaiting,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// The scheduler owns a task in these states (and resumes it after a restart).
    pub fn is_active(self) -> bool {
        matches!(self, Status::SessionWaiting | Status::InSession)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The operator starts it (`PUT /fuota-tasks/{Id}`).
    Start,
    /// Its start time came and the first fragment is about to go out.
    SessionBegins,
    /// Every gateway sent every fragment, or the session window ended.
    Finished,
    /// The operator deletes it.
    Delete,
}

/// Where a deleted task goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    To(Status),
    /// Nothing is sending: remove the task now.
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("FUOTA task is {from}; {why}")]
pub struct Refused {
    pub from: Status,
    pub why: &'static str,
}

pub fn step(from: Status, event: Event) -> Result<Next, Refused> {
    use Status::*;
    let refuse = |why| Err(Refused { from, why });
    match (from, event) {
        (Pending, Event::Start) => Ok(Next::To(SessionWaiting)),
        (SessionWaiting | InSession, Event::Start) => {
            refuse("it has already been started; delete it and create a new one to send again")
        }
        (Done, Event::Start) => refuse("it has finished; create a new task to send again"),
        (SessionWaiting, Event::SessionBegins) => Ok(Next::To(InSession)),
        (SessionWaiting | InSession, Event::Finished) => Ok(Next::To(Done)),
        (Pending | Done, Event::Delete) => Ok(Next::Remove),
        (SessionWaiting | InSession, Event::Delete) => Ok(Next::To(DeleteWaiting)),
        (DeleteWaiting, Event::Delete) => Ok(Next::To(DeleteWaiting)),
        (DeleteWaiting, _) => refuse("it is being deleted"),
        (_, Event::SessionBegins | Event::Finished) => refuse("it is not running"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn the_happy_path() {
        assert_eq!(step(Pending, Event::Start), Ok(Next::To(SessionWaiting)));
        assert_eq!(
            step(SessionWaiting, Event::SessionBegins),
            Ok(Next::To(InSession))
        );
        assert_eq!(step(InSession, Event::Finished), Ok(Next::To(Done)));
    }

    #[test]
    fn a_window_can_end_before_the_first_fragment() {
        assert_eq!(step(SessionWaiting, Event::Finished), Ok(Next::To(Done)));
    }

    #[test]
    fn deleting() {
        assert_eq!(step(Pending, Event::Delete), Ok(Next::Remove));
        assert_eq!(step(Done, Event::Delete), Ok(Next::Remove));
        assert_eq!(
            step(SessionWaiting, Event::Delete),
            Ok(Next::To(DeleteWaiting))
        );
        assert_eq!(step(InSession, Event::Delete), Ok(Next::To(DeleteWaiting)));
        assert_eq!(
            step(DeleteWaiting, Event::Delete),
            Ok(Next::To(DeleteWaiting))
        );
        assert!(step(DeleteWaiting, Event::Finished).is_err());
        assert!(step(DeleteWaiting, Event::Start).is_err());
    }

    #[test]
    fn refusals_name_the_state() {
        let e = step(InSession, Event::Start).unwrap_err();
        assert!(e.to_string().contains("In_FuotaSession"), "{e}");
        assert!(step(Done, Event::Start).is_err());
        assert!(step(Pending, Event::SessionBegins).is_err());
        assert!(step(Pending, Event::Finished).is_err());
        assert!(step(Done, Event::Finished).is_err());
    }

    #[test]
    fn names_round_trip() {
        for s in [Pending, SessionWaiting, InSession, Done, DeleteWaiting] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("Running"), None);
    }
}
