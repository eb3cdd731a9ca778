//! The process's allocator (mimalloc) and the thread that returns its freed memory to the
//! operating system while the service is idle.
//!
//! mimalloc gives a freed page back only once it has stayed free for its purge delay (a
//! second), and only when some thread next calls into the allocator: the delay is checked,
//! never timed. After a burst (startup's migrations and read-model checks, a run of
//! sign-ins) the threads that freed the pages go quiet, so nothing called in and the pages
//! stayed resident: 12 of the 23 MiB of anonymous memory of the idle embedded service were
//! freed pages waiting for their purge. [`return_freed_memory`] starts a thread that calls
//! in once a second; the purge itself stays mimalloc's (pages freed for less than the delay
//! stay, so a busy service keeps reusing its pages without paying the system calls twice).

use std::sync::OnceLock;
use std::time::Duration;

/// The allocator of every binary built on this crate (the service, its CLI, benches and
/// tests): the request path allocates and frees many small buffers (JSON, rows, headers),
/// and under load glibc's malloc and free took a fifth of the runtime threads' time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often the purge thread calls into the allocator: mimalloc's own purge delay, so a
/// page freed at idle is back with the system within two of them.
const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// Starts, once per process, the thread that lets mimalloc purge the pages freed while no
/// other thread calls into it. Later calls do nothing. Long-running commands (`serve`, the
/// mail workers) call it at startup.
pub fn return_freed_memory() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let started = std::thread::Builder::new()
            .name("allocator-purge".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(PURGE_INTERVAL);
                    collect();
                }
            });
        if let Err(error) = started {
            tracing::warn!(%error, "no purge thread for the allocator; freed memory returns to the system only as threads allocate again");
        }
    });
}

/// One call into the allocator: it purges every arena range whose delay has passed (arenas
/// are process-wide, whichever thread freed the pages) and tidies this thread's own pages.
#[expect(
    unsafe_code,
    reason = "mimalloc's collect is only reachable through its C interface"
)]
fn collect() {
    // SAFETY: `mi_collect` takes no pointers and may be called from any thread at any time;
    // `false` asks for a normal collection, which frees nothing still in use.
    unsafe { libmimalloc_sys::mi_collect(false) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    /// This process's anonymous resident memory (heap and stacks), in MiB.
    fn anonymous_mib() -> f64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("RssAnon:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("RssAnon in /proc/self/status");
        kib / 1024.0
    }

    #[test]
    fn memory_freed_by_a_thread_gone_quiet_returns_to_the_system() {
        const MIB: usize = 64;
        return_freed_memory();
        let (freed, was_freed) = mpsc::channel();
        let (finish, finished) = mpsc::channel::<()>();
        // A thread allocates and touches 64 MiB in small blocks, frees them, then waits
        // without calling into the allocator, as a blocking-pool thread after a burst does.
        let quiet = std::thread::spawn(move || {
            let blocks: Vec<Vec<u8>> = (0..MIB * 1024).map(|_| vec![1u8; 1024]).collect();
            let holding = anonymous_mib();
            drop(blocks);
            freed.send(holding).expect("the test waits");
            let _ = finished.recv();
        });
        let holding = was_freed.recv().expect("the thread frees its blocks");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut now = anonymous_mib();
        while now > holding - (MIB as f64) * 0.75 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            now = anonymous_mib();
        }
        let _ = finish.send(());
        quiet.join().expect("the thread ends");
        assert!(
            now <= holding - (MIB as f64) * 0.75,
            "{MIB} MiB freed, but anonymous memory went only from {holding:.1} to {now:.1} MiB"
        );
    }
}
