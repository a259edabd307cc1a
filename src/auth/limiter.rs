//! Login rate limiting: failed sign-ins counted per account and per address over a fixed
//! window; past the limit, sign-ins for that key are refused until the window ends (before
//! any password is checked, so guessing also costs no argon2 time). Bounded memory: when
//! the table is full, windows that ended go first, then the oldest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys (accounts + addresses) tracked at once.
pub const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub window: Duration,
    /// Failures allowed per account in a window.
    pub per_account: u32,
    /// Failures allowed per client address in a window (several people may share one).
    pub per_address: u32,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            window: Duration::from_secs(15 * 60),
            per_account: 5,
            per_address: 20,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

pub struct LoginLimiter {
    limits: LoginLimits,
    table: Mutex<HashMap<String, Window>>,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> LoginLimiter {
        LoginLimiter {
            limits,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn keys(account: &str, address: Option<&str>) -> [(String, bool); 2] {
        [
            (format!("user:{account}"), true),
            (format!("addr:{}", address.unwrap_or("unknown")), false),
        ]
    }

    /// `Err(seconds to wait)` when the account or the address has failed too often.
    pub fn check(&self, account: &str, address: Option<&str>) -> Result<(), u64> {
        let Ok(table) = self.table.lock() else {
            return Err(self.limits.window.as_secs());
        };
        let now = Instant::now();
        let mut wait = None;
        for (key, is_account) in Self::keys(account, address) {
            let limit = if is_account {
                self.limits.per_account
            } else {
                self.limits.per_address
            };
            if let Some(w) = table.get(&key) {
                let elapsed = now.duration_since(w.started);
                if elapsed < self.limits.window && w.failures >= limit {
                    let left = (self.limits.window - elapsed).as_secs().max(1);
                    wait = Some(wait.map_or(left, |w: u64| w.max(left)));
                }
            }
        }
        wait.map_or(Ok(()), Err)
    }

    pub fn failed(&self, account: &str, address: Option<&str>) {
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        let now = Instant::now();
        if table.len() + 2 > MAX_KEYS {
            table.retain(|_, w| now.duration_since(w.started) < self.limits.window);
            while table.len() + 2 > MAX_KEYS {
                let Some(oldest) = table
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                table.remove(&oldest);
            }
        }
        for (key, _) in Self::keys(account, address) {
            let w = table.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.duration_since(w.started) >= self.limits.window {
                *w = Window {
                    started: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }

    /// A good sign-in clears the account's failures (not the address's).
    pub fn succeeded(&self, account: &str) {
        if let Ok(mut table) = self.table.lock() {
            table.remove(&format!("user:{account}"));
        }
    }

    pub fn tracked(&self) -> usize {
        self.table.lock().map_or(0, |t| t.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_the_account_and_the_address_within_bounds() {
        let limiter = LoginLimiter::new(LoginLimits {
            window: Duration::from_secs(60),
            per_account: 3,
            per_address: 5,
        });
        for _ in 0..3 {
            assert!(limiter.check("ann", Some("10.0.0.1")).is_ok());
            limiter.failed("ann", Some("10.0.0.1"));
        }
        let wait = limiter.check("ann", Some("10.0.0.9")).expect_err("locked");
        assert!((1..=60).contains(&wait), "{wait}");
        // Another account from the same address: two more failures lock the address.
        limiter.failed("bob", Some("10.0.0.1"));
        limiter.failed("bob", Some("10.0.0.1"));
        assert!(limiter.check("carol", Some("10.0.0.1")).is_err());
        assert!(limiter.check("carol", Some("10.0.0.2")).is_ok());
        limiter.succeeded("ann");
        assert!(limiter.check("ann", Some("10.0.0.9")).is_ok());
        // Memory stays bounded however many names are tried.
        for i in 0..(MAX_KEYS + 50) {
            limiter.failed(&format!("u{i}"), Some("10.0.0.3"));
        }
        assert!(limiter.tracked() <= MAX_KEYS);
    }
}
