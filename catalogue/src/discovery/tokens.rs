//! Access tokens a provider got by logging in (OpenStack's Keystone, Azure's Entra ID), kept
//! for the pages and scans that follow so a scan logs in once, not once per page.
//!
//! Entries are keyed by a SHA-256 of everything the login used (endpoint, identity, secret), so
//! changed credentials never find an old token and the secret itself is not kept as a key. An
//! entry is used until a minute before it expires; the cache holds at most [`TOKENS_MAX`]
//! entries, dropping expired ones first, then the one expiring soonest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Most tokens kept at once (one per connection in use).
pub const TOKENS_MAX: usize = 1024;
/// A token this close to expiring is not handed out again.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Tokens of one provider, with what came with each (Keystone's catalogue).
pub struct TokenCache<T> {
    entries: Mutex<HashMap<[u8; 32], (Instant, T)>>,
}

impl<T> Default for TokenCache<T> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

/// The cache key of a login made of `parts` (each part's length goes in first, so
/// `("ab", "c")` and `("a", "bc")` differ).
pub fn login_key(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

impl<T: Clone> TokenCache<T> {
    /// The token of `key` while it has more than [`EXPIRY_MARGIN`] left.
    pub fn get(&self, key: &[u8; 32]) -> Option<T> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(until, _)| *until > Instant::now() + EXPIRY_MARGIN)
            .map(|(_, t)| t.clone())
    }

    /// Keeps `token` for `key` until `valid_for` from now (one about to expire is not kept).
    pub fn put(&self, key: [u8; 32], token: T, valid_for: Duration) {
        if valid_for <= EXPIRY_MARGIN {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= TOKENS_MAX && !entries.contains_key(&key) {
            entries.retain(|_, (until, _)| *until > now + EXPIRY_MARGIN);
            if entries.len() >= TOKENS_MAX
                && let Some(soonest) = entries
                    .iter()
                    .min_by_key(|(_, (until, _))| *until)
                    .map(|(k, _)| *k)
            {
                entries.remove(&soonest);
            }
        }
        entries.insert(key, (now + valid_for, token));
    }

    /// Forgets the token of `key` (the service refused it).
    pub fn forget(&self, key: &[u8; 32]) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().expect("lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_kept_until_shortly_before_they_expire() {
        let cache = TokenCache::<String>::default();
        let (a, b) = (login_key(&["ab", "c"]), login_key(&["a", "bc"]));
        assert_ne!(a, b, "parts are delimited");
        cache.put(a, "long".into(), Duration::from_secs(3600));
        cache.put(b, "short".into(), Duration::from_secs(30));
        assert_eq!(cache.get(&a).as_deref(), Some("long"));
        assert_eq!(cache.get(&b), None, "within the margin of its expiry");
        cache.forget(&a);
        assert_eq!(cache.get(&a), None);
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = TokenCache::<u32>::default();
        for i in 0..(TOKENS_MAX as u32 + 10) {
            let secs = if i == 5 { 10 } else { 3600 + u64::from(i) };
            cache.put(login_key(&[&i.to_string()]), i, Duration::from_secs(secs));
        }
        assert_eq!(cache.len(), TOKENS_MAX);
        assert_eq!(
            cache.get(&login_key(&["5"])),
            None,
            "the expired one went first"
        );
        assert_eq!(
            cache.get(&login_key(&[&(TOKENS_MAX as u32 + 9).to_string()])),
            Some(TOKENS_MAX as u32 + 9)
        );
    }
}
