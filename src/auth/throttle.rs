//! Sign-in throttling: failed sign-ins are counted per account name and per client address; past a
//! number of free attempts, each further failure locks that key out for a time that doubles, up to
//! a cap. During a lockout sign-ins are refused (429 with `Retry-After`) without checking the
//! password, so a guesser gets neither answers nor Argon2 work out of the server.
//!
//! The account cap is short (a minute by default) so that an attacker who knows a username cannot
//! keep its real user out for long — at one guess a minute, online guessing of a 12-character
//! password is hopeless anyway; the address cap is longer (fifteen minutes), as an address that
//! keeps failing is the attacker's own. A success clears the account's count, not the address's.
//! Counts are forgotten after `FORGET_AFTER` without a failure; each cache holds at most
//! `MAX_KEYS` keys, so a flood of made-up names cannot grow memory. The counts are per instance:
//! with N instances behind a balancer an attacker gets up to N times the free attempts.

use std::time::{Duration, Instant};

/// Failures are forgotten after this long without another.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Keys per cache, far above any legitimate traffic; the least recently used go first beyond it.
const MAX_KEYS: u64 = 100_000;
/// The first lockout; each further failure doubles it.
const FIRST_LOCKOUT: Duration = Duration::from_secs(1);

/// The `HEALTHCORE_LOGIN_*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub account_free_attempts: u32,
    pub account_max_lockout: Duration,
    pub address_free_attempts: u32,
    pub address_max_lockout: Duration,
}

/// Which key a lockout is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Account,
    Address,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Account => "account",
            Scope::Address => "address",
        }
    }
}

/// A refusal: which key is locked, for how much longer, and whether it is the first refusal of
/// this lockout (audited; the rest are only counted, so a flood does not flood the audit trail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub scope: Scope,
    pub retry_after: Duration,
    pub first_refusal: bool,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    refused_since_locked: bool,
}

#[derive(Clone)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    accounts: moka::sync::Cache<String, Failures>,
    addresses: moka::sync::Cache<String, Failures>,
}

fn cache() -> moka::sync::Cache<String, Failures> {
    moka::sync::Cache::builder().max_capacity(MAX_KEYS).time_to_idle(FORGET_AFTER).build()
}

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> LoginThrottle {
        LoginThrottle { policy, accounts: cache(), addresses: cache() }
    }

    /// Refuses a sign-in while the account or the address is locked out.
    pub fn check(&self, account: &str, address: Option<&str>) -> Result<(), Locked> {
        let now = Instant::now();
        let keys = [(Scope::Account, &self.accounts, Some(account)), (Scope::Address, &self.addresses, address)];
        for (scope, cache, key) in keys {
            let Some(key) = key else { continue };
            let Some(mut failures) = cache.get(key) else { continue };
            if let Some(until) = failures.locked_until.filter(|until| *until > now) {
                let first_refusal = !failures.refused_since_locked;
                failures.refused_since_locked = true;
                cache.insert(key.to_owned(), failures);
                return Err(Locked { scope, retry_after: until - now, first_refusal });
            }
        }
        Ok(())
    }

    /// Counts a failed sign-in; returns the lockouts it started.
    pub fn failed(&self, account: &str, address: Option<&str>) -> Vec<(Scope, Duration)> {
        let now = Instant::now();
        let mut started = Vec::new();
        let keys = [
            (
                Scope::Account,
                &self.accounts,
                Some(account),
                self.policy.account_free_attempts,
                self.policy.account_max_lockout,
            ),
            (
                Scope::Address,
                &self.addresses,
                address,
                self.policy.address_free_attempts,
                self.policy.address_max_lockout,
            ),
        ];
        for (scope, cache, key, free, max) in keys {
            let Some(key) = key else { continue };
            let mut failures =
                cache.get(key).unwrap_or(Failures { count: 0, locked_until: None, refused_since_locked: false });
            failures.count = failures.count.saturating_add(1);
            if failures.count > free {
                let lockout = lockout(failures.count - free, max);
                failures.locked_until = Some(now + lockout);
                failures.refused_since_locked = false;
                started.push((scope, lockout));
            }
            cache.insert(key.to_owned(), failures);
        }
        started
    }

    /// A successful sign-in clears its account's failures (not its address's).
    pub fn succeeded(&self, account: &str) {
        self.accounts.invalidate(account);
    }
}

/// The lockout after the `excess`-th failure beyond the free ones: 1 s, 2 s, 4 s … up to `max`.
fn lockout(excess: u32, max: Duration) -> Duration {
    FIRST_LOCKOUT.saturating_mul(2u32.saturating_pow(excess.saturating_sub(1).min(31))).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            account_free_attempts: 3,
            account_max_lockout: Duration::from_secs(60),
            address_free_attempts: 5,
            address_max_lockout: Duration::from_secs(900),
        }
    }

    #[test]
    fn lockouts_double_up_to_their_cap() {
        let max = Duration::from_secs(60);
        let steps: Vec<u64> = (1..=8).map(|n| lockout(n, max).as_secs()).collect();
        assert_eq!(steps, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(lockout(u32::MAX, max), max);
    }

    #[test]
    fn an_account_is_locked_after_its_free_attempts_and_a_success_clears_it() {
        let throttle = LoginThrottle::new(policy());
        for _ in 0..3 {
            assert!(throttle.failed("ada", Some("10.0.0.1")).is_empty());
        }
        assert_eq!(throttle.check("ada", Some("10.0.0.2")), Ok(()));
        assert_eq!(throttle.failed("ada", Some("10.0.0.1")), [(Scope::Account, Duration::from_secs(1))]);
        let locked = throttle.check("ada", Some("10.0.0.2")).unwrap_err();
        assert_eq!((locked.scope, locked.first_refusal), (Scope::Account, true));
        assert!(!throttle.check("ada", None).unwrap_err().first_refusal, "audited once per lockout");
        throttle.succeeded("ada");
        assert_eq!(throttle.check("ada", None), Ok(()));
    }

    #[test]
    fn an_address_that_keeps_failing_is_locked_whatever_names_it_tries() {
        let throttle = LoginThrottle::new(policy());
        for n in 0..5 {
            throttle.failed(&format!("name-{n}"), Some("10.0.0.9"));
        }
        assert_eq!(throttle.failed("name-5", Some("10.0.0.9")), [(Scope::Address, Duration::from_secs(1))]);
        assert_eq!(throttle.check("someone-else", Some("10.0.0.9")).unwrap_err().scope, Scope::Address);
        assert_eq!(throttle.check("someone-else", Some("10.0.0.10")), Ok(()));
    }
}
