//! Console sessions: signing in with an API token (or, later, an access key)
//! opens a session named after that caller; its random Id travels in an
//! HttpOnly, SameSite=Strict cookie and its CSRF token in every form. Sessions
//! end `[console] session_minutes` after sign-in, on sign-out, or when
//! `[console] max_sessions` are open and a new one needs room (the oldest goes).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::Caller;

/// The cookie's name.
pub const COOKIE: &str = "sk_session";

#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    pub csrf: String,
    started: Instant,
}

pub struct Sessions {
    ttl: Duration,
    max: usize,
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(cfg: &crate::config::ConsoleConfig) -> Sessions {
        Sessions {
            ttl: Duration::from_secs(cfg.session_minutes * 60),
            max: cfg.max_sessions,
            open: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `caller`; returns its Id (the cookie's value).
    pub fn open(&self, caller: Caller) -> String {
        let now = Instant::now();
        let mut open = self.lock();
        open.retain(|_, s| now.duration_since(s.started) < self.ttl);
        while open.len() >= self.max {
            let Some(oldest) = open
                .iter()
                .min_by_key(|(_, s)| s.started)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            open.remove(&oldest);
        }
        let id = crate::app::new_secret();
        open.insert(
            id.clone(),
            Session {
                caller,
                csrf: crate::app::new_secret(),
                started: now,
            },
        );
        id
    }

    /// The live session with this Id, if any (an expired one is ended).
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut open = self.lock();
        match open.get(id) {
            Some(s) if s.started.elapsed() < self.ttl => Some(s.clone()),
            Some(_) => {
                open.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(minutes: u64, max: usize) -> Sessions {
        Sessions::new(&crate::config::ConsoleConfig {
            session_minutes: minutes,
            max_sessions: max,
            ..Default::default()
        })
    }

    fn caller() -> Caller {
        Caller {
            name: "api-token".into(),
            access_key_id: None,
        }
    }

    #[test]
    fn sessions_open_end_and_are_bounded() {
        let s = sessions(60, 2);
        let a = s.open(caller());
        let got = s.get(&a).unwrap();
        assert_eq!(got.caller, caller());
        assert_ne!(got.csrf, a, "the CSRF token is not the session Id");
        let b = s.open(caller());
        let c = s.open(caller());
        assert!(s.get(&a).is_none(), "the oldest made room");
        assert!(s.get(&b).is_some() && s.get(&c).is_some());
        s.end(&b);
        assert!(s.get(&b).is_none());
        assert!(s.get("made-up").is_none());
    }

    #[test]
    fn sessions_expire() {
        let s = Sessions {
            ttl: Duration::from_millis(20),
            max: 4,
            open: Mutex::new(HashMap::new()),
        };
        let a = s.open(caller());
        assert!(s.get(&a).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(s.get(&a).is_none());
    }
}
