//! Dashboard sessions: a random id in an HttpOnly cookie names a session held in this
//! process's memory, with the operator's token (checked again on every request, so a
//! revoked token ends its sessions) and the session's CSRF token. Sessions end after their
//! time to live, on sign-out, and when the server restarts; each replica keeps its own.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// The most sessions kept; the oldest goes first when more sign in.
const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Clone)]
pub struct Session {
    /// The operator's bearer token (never sent back to the browser).
    pub token: String,
    /// The CSRF token every mutating form of this session carries.
    pub csrf: String,
    /// When it ends, in ms since the Unix epoch.
    pub expires: i64,
}

/// The live sessions.
pub struct Sessions {
    ttl_ms: i64,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(ttl_ms: i64) -> Self {
        Self {
            ttl_ms,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Opens a session for `token` (already checked to be an operator's); returns its id
    /// and its time to live in seconds.
    pub fn open(&self, token: &str, now: i64) -> (String, i64) {
        let id = random_hex();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                token: token.to_string(),
                csrf: random_hex(),
                expires: now + self.ttl_ms,
            },
        );
        (id, self.ttl_ms / 1000)
    }

    /// The live session with this id.
    pub fn get(&self, id: &str, now: i64) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(id) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

/// 32 random bytes from the OS-seeded generator, as hex.
pub fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_until_its_time_to_live_then_is_gone() {
        let s = Sessions::new(1000);
        let (id, ttl) = s.open("alk_x", 10);
        assert_eq!(ttl, 1);
        assert_eq!(s.get(&id, 500).map(|x| x.token), Some("alk_x".into()));
        assert!(s.get(&id, 1010).is_none());
        assert!(s.get(&id, 500).is_none(), "an expired session is dropped");
    }

    #[test]
    fn ids_and_csrf_tokens_are_unguessable_and_distinct() {
        let s = Sessions::new(1000);
        let (a, _) = s.open("t", 0);
        let (b, _) = s.open("t", 0);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        let (sa, sb) = (s.get(&a, 1).unwrap(), s.get(&b, 1).unwrap());
        assert_ne!(sa.csrf, sb.csrf);
        assert_ne!(sa.csrf, a);
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(!same("", "a"));
    }
}
