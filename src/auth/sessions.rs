//! The portal's sign-in sessions, in memory (a restart signs everyone out): a random id in
//! an HttpOnly cookie, looked up by its SHA-256 (so the table's lookup time says nothing
//! about the secret), each with an expiry, the user's password epoch (a new password ends
//! older sessions) and the CSRF token bound to it. Bounded: when full, expired sessions go
//! first, then the one closest to expiring.

use super::{random_hex, Result};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sessions held at once.
pub const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    /// The user's password epoch when the session opened.
    pub epoch: String,
    pub csrf: String,
    pub expires: Instant,
}

pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Session>>,
    max: usize,
}

fn key(id: &str) -> [u8; 32] {
    sha2::Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(max: usize) -> Sessions {
        Sessions {
            table: Mutex::new(HashMap::new()),
            max: max.max(1),
        }
    }

    /// Opens a session; returns its id (the cookie's value) and the session.
    pub fn open(&self, user: &str, epoch: &str, ttl: Duration) -> Result<(String, Session)> {
        let id = random_hex(32)?;
        let session = Session {
            user: user.to_string(),
            epoch: epoch.to_string(),
            csrf: random_hex(32)?,
            expires: Instant::now() + ttl,
        };
        if let Ok(mut table) = self.table.lock() {
            if table.len() >= self.max {
                let now = Instant::now();
                table.retain(|_, s| s.expires > now);
            }
            if table.len() >= self.max {
                if let Some(soonest) = table.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
                {
                    table.remove(&soonest);
                }
            }
            table.insert(key(&id), session.clone());
        }
        Ok((id, session))
    }

    /// The live session with this id (an expired one is dropped).
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut table = self.table.lock().ok()?;
        let k = key(id);
        match table.get(&k) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                table.remove(&k);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, id: &str) {
        if let Ok(mut table) = self.table.lock() {
            table.remove(&key(id));
        }
    }

    pub fn len(&self) -> usize {
        self.table.lock().map_or(0, |t| t.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_close_and_stay_bounded() {
        let sessions = Sessions::new(3);
        let (id, s) = sessions
            .open("ann", "e1", Duration::from_secs(60))
            .expect("open");
        assert_eq!(sessions.get(&id).expect("live").user, "ann");
        assert_eq!(s.csrf.len(), 64);
        assert!(sessions.get("not-an-id").is_none());
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
        let (expired, _) = sessions.open("ann", "e1", Duration::ZERO).expect("open");
        assert!(sessions.get(&expired).is_none());
        let ids: Vec<String> = (0..5)
            .map(|i| {
                sessions
                    .open("bob", "e", Duration::from_secs(60 + i))
                    .expect("open")
                    .0
            })
            .collect();
        assert_eq!(sessions.len(), 3);
        // The newest survive; the ones closest to expiring went.
        assert!(sessions.get(&ids[4]).is_some() && sessions.get(&ids[0]).is_none());
    }
}
