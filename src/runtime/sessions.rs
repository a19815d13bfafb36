//! Operators' sign-in sessions for the console: a password checked against the store's argon2id
//! hash gives a session (a random token for an `HttpOnly` cookie, and a CSRF token the console
//! sends back with every change); repeated failures lock the name out for a while. Sessions live
//! in memory: after a restart the cookie is refused cleanly (401) and the operator signs in
//! again.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};
use tracing::warn;

use crate::domain::OperatorRole;
use crate::runtime::operators::verify_password;
use crate::store::{Store, StoreError};

/// A session lasts this long after sign-in.
pub const SESSION_LIFETIME: TimeDelta = TimeDelta::hours(12);
/// Failures within [`LOCKOUT_WINDOW`] that lock a name out.
pub const MAX_FAILURES: usize = 5;
/// How long failures are counted, and how long a lock-out lasts.
pub const LOCKOUT_WINDOW: TimeDelta = TimeDelta::minutes(15);
/// Sessions kept at once (a bound: expired ones go first).
const MAX_SESSIONS: usize = 10_000;
/// Names whose failed sign-ins are counted at once (a bound against names tried at random).
const MAX_TRACKED_NAMES: usize = 10_000;

/// A signed-in operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token: String,
    pub csrf: String,
    pub name: String,
    pub role: OperatorRole,
    pub expires_at: DateTime<Utc>,
}

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown name or wrong password (the same answer for both).
    #[error("wrong name or password")]
    Refused,
    #[error("too many failed sign-ins for this name: try again after {0}")]
    LockedOut(DateTime<Utc>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Session>,
    /// Failed sign-ins per name, within the window.
    failures: HashMap<String, Vec<DateTime<Utc>>>,
}

/// Password checks at once. Each argon2id check takes 19 MiB for its moment: without a bound, a
/// flood of sign-ins (right names or not) would fill the blocking pool's 512 threads — about
/// 10 GB — instead of queueing.
const CONCURRENT_CHECKS: usize = 2;

/// The sessions of the running service.
pub struct Sessions {
    state: Mutex<State>,
    /// A permit per password check in progress (see [`CONCURRENT_CHECKS`]).
    pub checks: tokio::sync::Semaphore,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            state: Mutex::default(),
            checks: tokio::sync::Semaphore::new(CONCURRENT_CHECKS),
        }
    }
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    /// Signs `name` in with `password` (blocking: it reads the store and hashes).
    pub fn sign_in(
        &self,
        store: &Store,
        name: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<Session, SignInError> {
        if let Some(until) = self.locked_until(name, now) {
            return Err(SignInError::LockedOut(until));
        }
        let account = store.operator(name)?;
        // A missing account costs a hash too, so timing does not tell which names exist.
        let hash = account
            .as_ref()
            .map_or(DUMMY_HASH, |a| a.password_hash.as_str());
        let matches = verify_password(password, hash);
        let (Some(account), true) = (account, matches) else {
            let failures = self.fail(name, now);
            warn!(name, failures, "console sign-in refused");
            if failures >= MAX_FAILURES {
                warn!(
                    name,
                    failures,
                    minutes = LOCKOUT_WINDOW.num_minutes(),
                    "console sign-ins locked out for this name"
                );
            }
            return Err(SignInError::Refused);
        };
        let session = Session {
            token: random_token(),
            csrf: random_token(),
            name: account.name,
            role: account.role,
            expires_at: now + SESSION_LIFETIME,
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.failures.remove(name);
        if state.sessions.len() >= MAX_SESSIONS {
            state.sessions.retain(|_, s| s.expires_at > now);
        }
        state
            .sessions
            .insert(session.token.clone(), session.clone());
        Ok(session)
    }

    /// The live session of `token`.
    pub fn get(&self, token: &str, now: DateTime<Utc>) -> Option<Session> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .sessions
            .get(token)
            .filter(|s| s.expires_at > now)
            .cloned()
    }

    /// Ends the session of `token`; whether there was one.
    pub fn sign_out(&self, token: &str) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.sessions.remove(token).is_some()
    }

    /// Ends every session of `name` (the account was removed or its password changed).
    pub fn sign_out_everywhere(&self, name: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.sessions.retain(|_, s| s.name != name);
    }

    fn locked_until(&self, name: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let recent: Vec<&DateTime<Utc>> = state
            .failures
            .get(name)?
            .iter()
            .filter(|&&at| now - at < LOCKOUT_WINDOW)
            .collect();
        (recent.len() >= MAX_FAILURES)
            .then(|| *recent[recent.len() - MAX_FAILURES] + LOCKOUT_WINDOW)
    }

    /// Counts a failure; returns the failures within the window.
    fn fail(&self, name: &str, now: DateTime<Utc>) -> usize {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Names tried at random must not grow the map without end: past the bound, only names
        // with recent failures are kept.
        if state.failures.len() >= MAX_TRACKED_NAMES {
            state
                .failures
                .retain(|_, at| at.iter().any(|&t| now - t < LOCKOUT_WINDOW));
            if state.failures.len() >= MAX_TRACKED_NAMES {
                state.failures.clear();
            }
        }
        let failures = state.failures.entry(name.to_owned()).or_default();
        failures.retain(|&at| now - at < LOCKOUT_WINDOW);
        failures.push(now);
        failures.len()
    }
}

/// A valid argon2id hash of nothing anyone types, checked for unknown names.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2BDZc/7vTmiwJW9dbRQ3wBSQu/zUaVvL8qH+0D0a8Ks";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::operators;

    #[test]
    fn a_right_password_signs_in_a_wrong_one_is_refused_and_five_lock_the_name_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let now = Utc::now();
        operators::add(
            &store,
            "wang",
            OperatorRole::Operator,
            "wang's password",
            now,
        )
        .unwrap();
        let sessions = Sessions::default();
        let session = sessions
            .sign_in(&store, "wang", "wang's password", now)
            .unwrap();
        assert_eq!(session.role, OperatorRole::Operator);
        assert_eq!(session.token.len(), 64);
        assert_ne!(session.token, session.csrf);
        assert_eq!(sessions.get(&session.token, now), Some(session.clone()));
        assert!(
            sessions
                .get(&session.token, now + SESSION_LIFETIME)
                .is_none(),
            "expired"
        );
        assert!(matches!(
            sessions.sign_in(&store, "nobody", "whatever it is", now),
            Err(SignInError::Refused)
        ));
        for _ in 0..MAX_FAILURES {
            assert!(matches!(
                sessions.sign_in(&store, "wang", "wrong password", now),
                Err(SignInError::Refused)
            ));
        }
        // Locked out, even with the right password, until the window passes.
        assert!(matches!(
            sessions.sign_in(&store, "wang", "wang's password", now),
            Err(SignInError::LockedOut(_))
        ));
        let later = now + LOCKOUT_WINDOW + TimeDelta::seconds(1);
        assert!(
            sessions
                .sign_in(&store, "wang", "wang's password", later)
                .is_ok()
        );
        assert!(sessions.sign_out(&session.token));
        assert!(sessions.get(&session.token, now).is_none());
    }

    #[test]
    fn names_tried_at_random_do_not_grow_the_failure_count_without_end() {
        let sessions = Sessions::default();
        let then = Utc::now();
        for i in 0..MAX_TRACKED_NAMES {
            sessions.fail(&format!("name{i}"), then);
        }
        let later = then + LOCKOUT_WINDOW + TimeDelta::seconds(1);
        sessions.fail("one more", later);
        let state = sessions.state.lock().unwrap();
        assert_eq!(state.failures.len(), 1, "stale names dropped");
    }

    #[test]
    fn the_dummy_hash_is_a_valid_hash_nobody_matches() {
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify_password("", DUMMY_HASH));
    }
}
