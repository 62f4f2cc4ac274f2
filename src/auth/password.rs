//! Argon2id password hashing, run off the async executor because it is deliberately slow, and
//! bounded because it is deliberately expensive in memory: every run holds a 19 MiB block.

use std::sync::Arc;
use std::time::Duration;

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 256;

pub fn validate_new_password(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(format!("must be at least {MIN_LENGTH} characters"));
    }
    if length > MAX_LENGTH {
        return Err(format!("must be at most {MAX_LENGTH} characters"));
    }
    Ok(())
}

pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password and salt")
        .to_string()
}

pub fn verify(password: &str, stored_hash: &str) -> bool {
    match PasswordHash::new(stored_hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Memory one Argon2 run holds with the `argon2` crate's default parameters (m_cost = 19 MiB).
pub const MEMORY_PER_RUN: u64 = argon2::Params::DEFAULT_M_COST as u64 * 1024;

/// How long a login waits for a free hashing slot before it is answered 503: long enough to ride
/// out a burst, short enough that a flood is shed instead of queued.
const QUEUE_WAIT: Duration = Duration::from_secs(1);

/// The hashing slots are all taken and stayed so for `QUEUE_WAIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every password-hashing slot is busy")]
pub struct Busy;

/// Bounds the Argon2 runs in flight. Unbounded, each login an unauthenticated client sends costs
/// 19 MiB for as long as it runs: 32 concurrent wrong logins took the process from 52 to 689 MiB.
/// A run holds its slot until it finishes, also when the request that started it went away.
#[derive(Clone)]
pub struct PasswordWork {
    slots: Arc<Semaphore>,
    capacity: usize,
}

impl PasswordWork {
    pub fn new(concurrency: usize) -> PasswordWork {
        let capacity = concurrency.max(1);
        PasswordWork { slots: Arc::new(Semaphore::new(capacity)), capacity }
    }

    /// As many slots as cores, but no more than a quarter of `memory_limit` at `MEMORY_PER_RUN`
    /// each (and at least one).
    pub fn sized_for(cores: usize, memory_limit: u64) -> PasswordWork {
        let by_memory = usize::try_from(memory_limit / 4 / MEMORY_PER_RUN).unwrap_or(usize::MAX);
        PasswordWork::new(cores.min(by_memory))
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub async fn verify(&self, password: String, stored_hash: String) -> Result<bool, Busy> {
        self.run(move || verify(&password, &stored_hash)).await.map(|verified| verified.unwrap_or(false))
    }

    pub async fn hash(&self, password: String) -> Result<String, Busy> {
        self.run(move || hash(&password)).await?.map_err(|_| Busy)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<Result<T, tokio::task::JoinError>, Busy> {
        let slot = tokio::time::timeout(QUEUE_WAIT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        Ok(tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await)
    }
}

/// The memory this process may use: its cgroup's limit (v2, then v1), else the machine's memory.
pub fn memory_limit() -> u64 {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        .and_then(|text| text.trim().parse::<u64>().ok());
    let machine = read("/proc/meminfo").and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
    });
    match (cgroup, machine) {
        (Some(limit), Some(total)) => limit.min(total),
        (Some(limit), None) => limit,
        (None, Some(total)) => total,
        (None, None) => 1 << 30,
    }
}

/// Hashes without a bound: for the command line and the first start, never for a request.
pub async fn hash_blocking(password: String) -> String {
    tokio::task::spawn_blocking(move || hash(&password)).await.expect("password hashing does not panic")
}

/// Generates a random password for the first admin: 24 characters from an unambiguous alphabet.
pub fn generate() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..24).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_own_password_only() {
        let stored = hash("correct horse battery staple");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery staple", &stored));
        assert!(!verify("correct horse battery stapl", &stored));
    }

    #[test]
    fn a_malformed_hash_never_verifies() {
        assert!(!verify("anything", "not-a-hash"));
    }

    #[test]
    fn hashing_slots_are_bounded_by_cores_and_by_a_quarter_of_the_memory() {
        assert_eq!(PasswordWork::sized_for(8, 256 << 20).capacity(), 3);
        assert_eq!(PasswordWork::sized_for(2, 24 << 30).capacity(), 2);
        assert_eq!(PasswordWork::sized_for(4, 16 << 20).capacity(), 1);
    }

    #[tokio::test]
    async fn work_beyond_the_slots_is_refused_after_the_queue_wait() {
        let work = PasswordWork::new(1);
        let held = work.slots.clone().acquire_owned().await.unwrap();
        assert_eq!(work.verify("x".into(), "not-a-hash".into()).await, Err(Busy));
        drop(held);
        assert_eq!(work.verify("x".into(), "not-a-hash".into()).await, Ok(false));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(validate_new_password("short").is_err());
        assert!(validate_new_password(&generate()).is_ok());
    }
}
