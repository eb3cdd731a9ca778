//! Password hashing: argon2id with OWASP's parameters (7 MiB, 5 passes, 1 lane, one of the
//! five configurations its cheat sheet gives as equally strong), run on a fixed set of
//! threads of its own with bounded concurrency, so that a burst of sign-ins can neither
//! stall the async runtime nor exhaust memory.
//!
//! Of those five, the smallest area is the fastest here: two 19 MiB areas (the first
//! configuration, used before) do not fit together in a 32 MiB L3 cache, and two hashes at
//! once slowed each other. Hashes made with other parameters still verify: a PHC string
//! carries its own.
//!
//! The implementation is the `argon2-rust` crate, a port of the reference C code's
//! optimised path whose compression function is chosen at run time for the CPU at hand
//! (AVX-512, AVX2, SSE2, NEON or scalar), so one binary runs at full speed everywhere. The
//! RustCrypto `argon2` crate, used before, computes the same hashes (the known answers in
//! the tests came from it) in about twice the time on the machines measured
//! (docs/PERFORMANCE.md, the seventeenth session): a sign-in is mostly its hash. Each
//! hash's working area is wiped once it is done (the crate's `zeroize-memory`).
//!
//! The bound is split in two shares: verifying a password (sign-in, re-authentication, the
//! current password of a change) takes a permit of the larger share; hashing a new one
//! (registration, a password change) one of the smaller. New hashes never borrow, so a
//! flood of registrations queues behind itself, never in front of a sign-in. A verification
//! may borrow a permit of new hashes that is idle at that moment (and no new hash waits):
//! otherwise, on a two-core node whose shares are one permit each, sign-ins would queue on
//! one thread while the other sat idle. A new hash arriving then waits at most for that one
//! borrowed hash to finish, since a released permit goes to a waiting new hash first.
//!
//! Memory stays bounded: there is one hashing thread per permit, and each keeps its argon2
//! working area (7 MiB) for its whole life, hashing into it again and again; a hash of
//! the earlier 19 MiB parameters is verified in an area of its own, freed once done.
//! Hashing on the runtime's blocking pool instead allocated a fresh area per hash on
//! whichever of its many threads ran it, and the allocator kept those areas after sign-in
//! bursts (hundreds of MB).
//!
//! How long each hash waited for a permit of its share is recorded
//! ([`crate::metrics::PASSWORD_HASH_WAIT`], by share): the queue a burst builds.

use argon2_rust::params::Memory;
use argon2_rust::{Algorithm, Argon2, Error as Argon2Error, Hasher, Params, Version};
use rand::RngCore;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;
use tokio::sync::{Semaphore, SemaphorePermit, oneshot};

/// Why hashing failed (never because a password is wrong).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// argon2 refused its input.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task died.
    #[error("password hashing task failed")]
    Task,
}

/// What a password is verified against when the account does not exist, so that a wrong
/// e-mail costs the same work as a wrong password: a real hash, with the current
/// parameters, of 32 random bytes that were thrown away. Nothing is learned from it (an
/// unknown account is refused whatever matched), and as a constant it costs the service's
/// start no hash and no transient working area, which an allocator may keep.
const DECOY: &str = "$argon2id$v=19$m=7168,t=5,p=1$MquDZR2HjhtP4FmmAMHP1A$lAPgYt0rEI3B8kuEbyt5qcPS2w4fcrSS8G7Y4Zk6WZc";

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    /// Verifications: sign-ins and other proofs of the current password.
    verify_permits: Arc<Semaphore>,
    /// New hashes: registrations and password changes.
    hash_permits: Arc<Semaphore>,
    /// The hashing threads.
    pool: Arc<HashPool>,
}

/// The two shares of the hashing permits.
#[derive(Debug, Clone, Copy)]
enum Share {
    /// Verifications: sign-ins and other proofs of the current password.
    Verify,
    /// New hashes: registrations and password changes.
    Hash,
}

impl Share {
    /// Its name in the metrics.
    fn name(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Hash => "hash",
        }
    }
}

/// Work for a hashing thread: it gets the thread's hasher, which keeps its working area.
type Job = Box<dyn FnOnce(&mut Hasher) + Send>;

/// A fixed set of threads, each keeping one argon2 working area for its life. Jobs arrive
/// only with a permit of a share, so there is never more work than threads.
struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Working areas allocated or grown so far (one per thread, in steady state).
    areas: Arc<AtomicUsize>,
}

impl HashPool {
    fn start(threads: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let areas = Arc::new(AtomicUsize::new(0));
        for n in 0..threads {
            let queue = queue.clone();
            let areas = areas.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    let mut hasher = Passwords::argon2().hasher();
                    loop {
                        // The lock is held only while taking a job, never while hashing.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        let Ok(job) = job else { return };
                        let before = hasher.reserved_blocks();
                        job(&mut hasher);
                        if hasher.reserved_blocks() != before {
                            areas.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
                .expect("starting a password-hashing thread");
        }
        Self {
            jobs: Mutex::new(jobs),
            areas,
        }
    }

    fn submit(&self, job: Job) -> Result<(), PasswordError> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.send(job).map_err(|_| PasswordError::Task)
    }
}

/// How a PHC string of the current parameters starts ([`Passwords::owasp_params`]).
const CURRENT_PREFIX: &str = "$argon2id$v=19$m=7168,t=5,p=1$";

/// Bytes of random salt in a new hash (RFC 9106 recommends 16).
const SALT_LEN: usize = 16;

/// A new PHC string (`$argon2id$v=19$m=7168,t=5,p=1$…`) for `password`, in `hasher`'s
/// working area, at the parameters the thread's hasher was made with ([`Passwords::argon2`];
/// verifying a stored hash never changes them).
fn hash_new(hasher: &mut Hasher, password: &[u8]) -> Result<String, PasswordError> {
    let mut salt = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    hasher
        .hash_encoded(password, &salt)
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the argon2id PHC string `hash` (with its own version and
/// parameters; the comparison is constant-time). A hash that does not parse matches
/// nothing. A hash whose area is larger than the thread's (the earlier 19 MiB
/// parameters) is computed in an area of its own, freed once done, so the thread keeps
/// only the current parameters' area.
fn matches(hasher: &mut Hasher, password: &[u8], hash: &str) -> bool {
    match hasher.verify_encoded(hash, password, Algorithm::Argon2id) {
        Ok(()) => true,
        Err(Argon2Error::VerifyMismatch) => false,
        Err(error) => {
            tracing::warn!(%error, "a stored password hash could not be checked");
            false
        }
    }
}

/// How `max_concurrent` hashes at once are shared: `(verifications, new hashes)`. New
/// hashes get a quarter (at least one), verifications the rest (at least one); with fewer
/// than two permits there is nothing to split, and each share gets one.
pub fn shares(max_concurrent: usize) -> (usize, usize) {
    let new_hashes = (max_concurrent / 4).max(1);
    let verifications = max_concurrent.saturating_sub(new_hashes).max(1);
    (verifications, new_hashes)
}

impl Passwords {
    /// OWASP's argon2id configuration of 7 MiB and 5 passes (its cheat sheet's five
    /// configurations are equally strong; this one is the fastest on small machines, see
    /// the module's header), with a 32-byte tag.
    pub fn owasp_params() -> Params {
        Params::builder()
            .memory(Memory::kib(7 * 1024))
            .passes(5)
            .lanes(1)
            .build()
            .expect("valid argon2 parameters")
    }

    /// Whether `hash` was made with the parameters new hashes are made with
    /// ([`Self::owasp_params`]): a hash of other parameters is replaced at the next
    /// sign-in, so that checking it costs what checking an unknown address costs (the
    /// decoy's).
    pub fn is_current(hash: &str) -> bool {
        hash.starts_with(CURRENT_PREFIX)
    }

    /// argon2id, version 0x13, with [`Self::owasp_params`]: what new hashes are made with.
    fn argon2() -> Argon2 {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, Self::owasp_params())
    }

    /// A hasher running at most `max_concurrent` hashes at once, in two [`shares`], on
    /// as many threads of its own.
    pub fn new(max_concurrent: usize) -> Self {
        let (verifications, new_hashes) = shares(max_concurrent);
        let pool = HashPool::start(verifications + new_hashes);
        Self {
            verify_permits: Arc::new(Semaphore::new(verifications)),
            hash_permits: Arc::new(Semaphore::new(new_hashes)),
            pool: Arc::new(pool),
        }
    }

    /// Working areas the hashing threads have allocated so far: at most one per thread
    /// however many passwords were hashed (what keeps memory bounded).
    pub fn working_areas(&self) -> usize {
        self.pool.areas.load(Ordering::Relaxed)
    }

    /// Permits free now: `(verifications, new hashes)`.
    pub fn available(&self) -> (usize, usize) {
        (
            self.verify_permits.available_permits(),
            self.hash_permits.available_permits(),
        )
    }

    /// A permit free right now for work on `share`: its own, or, for a verification, an idle
    /// one of new hashes (`try_acquire` fails while a new hash waits for it, so borrowing
    /// never overtakes one).
    fn idle_permit(&self, share: Share) -> Option<SemaphorePermit<'_>> {
        let own = self.permits(share).try_acquire().ok();
        match share {
            Share::Verify => own.or_else(|| self.hash_permits.try_acquire().ok()),
            Share::Hash => own,
        }
    }

    fn permits(&self, share: Share) -> &Semaphore {
        match share {
            Share::Verify => &self.verify_permits,
            Share::Hash => &self.hash_permits,
        }
    }

    /// Runs `work` on a hashing thread once `share` grants a permit (or lends one, above).
    async fn run<T: Send + 'static>(
        &self,
        share: Share,
        work: impl FnOnce(&mut Hasher) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let queued = Instant::now();
        let _permit = match self.idle_permit(share) {
            Some(permit) => permit,
            None => self
                .permits(share)
                .acquire()
                .await
                .map_err(|_| PasswordError::Task)?,
        };
        metrics::histogram!(crate::metrics::PASSWORD_HASH_WAIT, "share" => share.name())
            .record(queued.elapsed());
        let (done, result) = oneshot::channel();
        self.pool.submit(Box::new(move |hasher| {
            let _ = done.send(work(hasher));
        }))?;
        result.await.map_err(|_| PasswordError::Task)
    }

    /// Hashes a new password into a PHC string (`$argon2id$v=19$m=7168,t=5,p=1$…`), on
    /// the share of new hashes.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_owned();
        self.run(Share::Hash, move |hasher| {
            hash_new(hasher, password.as_bytes())
        })
        .await?
    }

    /// Whether `password` matches `hash`, on the share of verifications. With no hash (no
    /// such account), verifies against the decoy and answers false, taking the same time.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, PasswordError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or(DECOY).to_owned();
        let password = password.to_owned();
        let matched = self
            .run(Share::Verify, move |hasher| {
                matches(hasher, password.as_bytes(), &hash)
            })
            .await?;
        Ok(known && matched)
    }
}

#[cfg(test)]
mod tests;
