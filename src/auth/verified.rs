//! Tokens verified recently, so that a caller sending the same token on
//! every call pays for its signature once. An entry holds for exactly that
//! token text and only while what verified it still stands: its `exp` and
//! `nbf` are checked again on every use (with the same leeway), and a token
//! verified with the key file's keys is dropped once that file has been
//! reloaded. Only successes are kept; refused tokens are verified anew.

use super::{LEEWAY_SECONDS, Principal, keys::KeySet};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

/// Entries kept at most; past this the cache starts over.
const MAX_ENTRIES: usize = 10_000;

/// How a token was verified, and until when it holds.
#[derive(Clone)]
pub(super) struct Verified {
    /// Who it names.
    pub principal: Principal,
    /// Its `exp`.
    pub exp: u64,
    /// Its `nbf`.
    pub nbf: Option<u64>,
    /// The key file's keys that verified it; `None` for the HS256 secret,
    /// which cannot change while the process runs.
    pub keys: Option<Arc<KeySet>>,
}

impl Verified {
    /// Whether the token is inside its validity window at `now` (seconds).
    fn in_time(&self, now: u64) -> bool {
        self.exp.saturating_add(LEEWAY_SECONDS) >= now
            && self
                .nbf
                .is_none_or(|nbf| nbf <= now.saturating_add(LEEWAY_SECONDS))
    }
}

/// The cache.
#[derive(Default)]
pub(super) struct VerifiedTokens(Mutex<HashMap<Box<str>, Verified>>);

impl VerifiedTokens {
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Verified>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The principal of `token` if it was verified and still holds at `now`
    /// with `current_keys` (the key file's keys now, if there is a file).
    pub fn get(
        &self,
        token: &str,
        now: u64,
        current_keys: impl FnOnce() -> Option<Arc<KeySet>>,
    ) -> Option<Principal> {
        let entry = self.lock().get(token).cloned()?;
        let keys_hold = match &entry.keys {
            None => true,
            Some(keys) => current_keys().is_some_and(|now| Arc::ptr_eq(keys, &now)),
        };
        if keys_hold && entry.in_time(now) {
            Some(entry.principal)
        } else {
            self.lock().remove(token);
            None
        }
    }

    /// Remembers a token that was just verified.
    pub fn insert(&self, token: &str, verified: Verified) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(token.into(), verified);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Claims, LEEWAY_SECONDS};

    fn verified(exp: u64, nbf: Option<u64>, keys: Option<Arc<KeySet>>) -> Verified {
        let principal = Principal::from_claims(Claims {
            sub: "alice".into(),
            scope: "organization:read".into(),
            org: Some("o1".into()),
            exp,
            nbf,
            iat: None,
        });
        Verified {
            principal,
            exp,
            nbf,
            keys,
        }
    }

    #[test]
    fn a_cached_token_still_expires_and_matures_with_the_leeway() {
        let cache = VerifiedTokens::default();
        cache.insert("t", verified(1_000, Some(500), None));
        assert!(cache.get("t", 1_000 + LEEWAY_SECONDS, || None).is_some());
        assert!(cache.get("t", 500 - LEEWAY_SECONDS, || None).is_some());
        assert!(cache.get("t", 1_001 + LEEWAY_SECONDS, || None).is_none());
        assert!(
            cache.get("t", 700, || None).is_none(),
            "dropped once expired"
        );
        cache.insert("early", verified(1_000, Some(500), None));
        assert!(cache.get("early", 499 - LEEWAY_SECONDS, || None).is_none());
    }

    #[test]
    fn a_token_of_the_key_file_holds_only_while_its_keys_do() {
        let cache = VerifiedTokens::default();
        let keys = Arc::new(KeySet::empty());
        cache.insert("t", verified(1_000, None, Some(keys.clone())));
        assert!(cache.get("t", 900, || Some(keys.clone())).is_some());
        let reloaded = Arc::new(KeySet::empty());
        assert!(cache.get("t", 900, || Some(reloaded)).is_none());
        assert!(
            cache.get("t", 900, || Some(keys.clone())).is_none(),
            "dropped"
        );
    }
}
