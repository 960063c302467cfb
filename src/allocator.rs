//! The process's memory allocator: mimalloc, told when to hand freed memory back to the OS.
//!
//! Under load, glibc's malloc took about a fifth of the CPU in `malloc`/`free` and more again
//! waiting on its arena locks, because much memory is freed on another thread than the one that
//! made it (SQLite's worker thread, the group-commit writer). mimalloc raised click2call creation
//! by about 60 % (BENCHMARKS.md). Four measures keep its memory use in line:
//! - transparent huge pages are off for the process (the `no_thp` feature): with them, each new
//!   2 MiB region was zeroed whole on its first touch, which cost CPU and resident memory;
//! - freed pages are purged at once during start-up ([`return_freed_memory_promptly`]), and
//!   [`SERVING_PURGE_DELAY`] after they are freed once the server serves
//!   ([`delay_returning_freed_memory`]). Purging at once while serving cost about a tenth of
//!   creation's CPU in `madvise` and in page faults on memory used again a moment later. A
//!   delay from the start left 5 to 10 MiB more in mimalloc's arena at idle, even with the
//!   forced collections below: start-up frees much (two password hashes' 19 MiB buffers among
//!   it), and with a delay those pages are reused rather than returned, so what stays live ends
//!   up spread over more of them (BENCHMARKS.md). `MIMALLOC_PURGE_DELAY` in the environment
//!   still wins;
//! - each tokio worker collects its own heap before it parks ([`collect_before_park`]). mimalloc
//!   frees a page only when the thread that owns it next allocates or collects, and an idle
//!   worker does neither: after 5,000 whole calls the two workers' heaps held ~39 MiB of pages
//!   whose blocks were all free (BENCHMARKS.md, idle after load). mimalloc cannot collect
//!   another thread's heap, so each worker must do it itself. The collection is forced: it
//!   purges what is freed at once, whatever the delay, since a delayed purge only runs when the
//!   allocator is next busy and an idle server would keep what it freed;
//! - SQLite allocates through glibc's malloc, one arena per connection thread, and glibc keeps
//!   what is freed inside an arena; a worker going idle trims the arenas at most every
//!   [`TRIM_EVERY`] (~6 MiB after the same load). Just before, SQLite gives back the pages its
//!   connections cache (up to 2 MiB each) that no statement is using, which it reads again from
//!   the OS's file cache when next needed: without it a trim finds little to return.
//!
//! It lives in the library so the binary, the tests and the benchmarks all run on the same one.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e`, which `libmimalloc-sys` does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes freed memory go back to the OS at once, unless `MIMALLOC_PURGE_DELAY` says otherwise.
/// Call it first thing in `main`.
pub fn return_freed_memory_promptly() {
    set_purge_delay_unless_configured(Duration::ZERO);
}

/// How long freed memory waits before it goes back to the OS once the server serves.
pub const SERVING_PURGE_DELAY: Duration = Duration::from_millis(100);

/// Lets freed memory wait [`SERVING_PURGE_DELAY`] before it goes back to the OS, unless
/// `MIMALLOC_PURGE_DELAY` says otherwise. Call it once start-up is done.
pub fn delay_returning_freed_memory() {
    set_purge_delay_unless_configured(SERVING_PURGE_DELAY);
}

/// Sets mimalloc's purge delay, unless the environment sets it (`MIMALLOC_PURGE_DELAY`).
fn set_purge_delay_unless_configured(delay: Duration) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        let millis = std::ffi::c_long::try_from(delay.as_millis()).unwrap_or(std::ffi::c_long::MAX);
        // SAFETY: setting a mimalloc option is a plain store into mimalloc's option table, valid
        // at any time; 15 is `mi_option_purge_delay` in the vendored mimalloc.h (v2 and v3).
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, millis) };
    }
}

/// How often at most a worker collects its heap as it parks. A worker parks many times a second
/// under load, and collecting walks the worker's pages and purges what it frees: at most every
/// 100 ms it was 2 % of creation's CPU (BENCHMARKS.md). The server's own timers (the delivery
/// poll every 250 ms) wake a worker often enough that the last collection after a load comes
/// within about this long.
const COLLECT_EVERY: Duration = Duration::from_secs(1);

/// How often at most glibc's arenas are trimmed, process-wide.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// When the arenas were last trimmed; the worker holding the lock is trimming them.
static LAST_TRIMMED: Mutex<Option<Instant>> = Mutex::new(None);

/// How many times a thread has collected its heap before parking, since the process started.
static COLLECTIONS: AtomicU64 = AtomicU64::new(0);

/// How many times a thread has collected its heap before parking, since the process started.
pub fn collections() -> u64 {
    COLLECTIONS.load(Ordering::Relaxed)
}

/// Frees the pages of this thread's heap whose blocks are all free, and returns to the OS all
/// that is waiting to be purged, at most once per [`COLLECT_EVERY`] per thread. Tokio calls it
/// on each worker before the worker parks ([`crate::runtime`]).
pub fn collect_before_park() {
    thread_local!(static LAST_COLLECTED: Cell<Option<Instant>> = const { Cell::new(None) });
    let now = Instant::now();
    LAST_COLLECTED.with(|last| {
        if last.get().is_some_and(|at| now.duration_since(at) < COLLECT_EVERY) {
            return;
        }
        last.set(Some(now));
        COLLECTIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `mi_collect` collects the calling thread's own heap; it may be called at any
        // time on any thread. Forced, it purges the arenas' freed memory without waiting out
        // the purge delay.
        unsafe { libmimalloc_sys::mi_collect(true) };
    });
    trim_sqlite_and_glibc();
}

/// Empties SQLite's page caches and returns the free memory inside glibc's arenas to the OS, at
/// most once per [`TRIM_EVERY`] across all threads. Only glibc has `malloc_trim`; elsewhere only
/// the page caches are emptied.
fn trim_sqlite_and_glibc() {
    // Another worker holding the lock is trimming already.
    let Ok(mut last) = LAST_TRIMMED.try_lock() else { return };
    if last.is_some_and(|at| at.elapsed() < TRIM_EVERY) {
        return;
    }
    *last = Some(Instant::now());
    release_native_memory();
}

/// Empties SQLite's page caches of the pages no statement holds, then trims glibc's arenas.
fn release_native_memory() {
    // SAFETY: `sqlite3_release_memory` takes the page cache's own mutex and frees only pages no
    // statement holds; SQLite (threadsafe, with memory management compiled in) allows it from
    // any thread while connections run on others.
    unsafe { libsqlite3_sys::sqlite3_release_memory(i32::MAX) };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes each arena's own lock; it may be called on any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// The server's runtime has its workers collect their heaps when they go idle; without the
    /// park hook nothing calls `collect_before_park` and the count stays put.
    #[test]
    fn the_servers_runtime_collects_each_idle_workers_heap() {
        let before = super::collections();
        let runtime = crate::runtime().unwrap();
        runtime.block_on(async {
            // Work on the workers, then leave them idle long enough to park.
            let tasks: Vec<_> = (0..64).map(|i| tokio::spawn(async move { vec![i; 1024].len() })).collect();
            for task in tasks {
                task.await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        assert!(super::collections() > before, "no worker collected its heap before parking");
    }

    /// What the process has resident, in bytes.
    #[cfg(target_os = "linux")]
    fn resident_bytes() -> i64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: i64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        // SAFETY: `sysconf` only reads a system setting.
        pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) }
    }

    /// While serving, freed memory waits out a purge delay; a worker's collection before it
    /// parks still returns it at once. With the delay at an hour, an unforced collection gave
    /// back nothing of the 96 MiB freed.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_parking_worker_returns_freed_memory_without_waiting_out_the_delay() {
        const MIB: i64 = 1024 * 1024;
        // SAFETY: reading and setting a mimalloc option are plain loads and stores into its table.
        let previous = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        unsafe { libmimalloc_sys::mi_option_set(super::MI_OPTION_PURGE_DELAY, 3_600_000) };
        // A thread of its own, so its first collection is not skipped as too soon.
        let given_back = std::thread::spawn(|| {
            let blocks: Vec<Vec<u8>> = (0..6144).map(|i| vec![i as u8 | 1; 16 * 1024]).collect();
            let before = resident_bytes();
            drop(blocks);
            super::collect_before_park();
            before - resident_bytes()
        })
        .join()
        .unwrap();
        unsafe { libmimalloc_sys::mi_option_set(super::MI_OPTION_PURGE_DELAY, previous) };
        assert!(given_back > 48 * MIB, "only {} MiB of 96 MiB freed went back to the OS", given_back / MIB);
    }

    /// Pages a SQLite connection cached for a read it has finished are given back: its cache
    /// held the table's pages after the read and holds almost none after the release.
    #[tokio::test]
    async fn sqlite_gives_back_its_cached_pages() {
        use libsqlite3_sys as ffi;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("cache.db").display());
        let db = crate::store::open(&url).await.unwrap();
        let mut connection = db.get_sqlite_connection_pool().acquire().await.unwrap();
        sea_orm::sqlx::query("CREATE TABLE pages (body BLOB)").execute(&mut *connection).await.unwrap();
        // About 1 MiB in 256 rows of 4 KiB, read back whole.
        sea_orm::sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 256) \
             INSERT INTO pages SELECT randomblob(4096) FROM n",
        )
        .execute(&mut *connection)
        .await
        .unwrap();
        let (bytes,): (i64,) =
            sea_orm::sqlx::query_as("SELECT sum(length(body)) FROM pages").fetch_one(&mut *connection).await.unwrap();
        assert_eq!(bytes, 256 * 4096);
        async fn cache_used(connection: &mut sea_orm::sqlx::SqliteConnection) -> i32 {
            let mut handle = connection.lock_handle().await.unwrap();
            let (mut current, mut highest) = (0, 0);
            // SAFETY: the handle is open and held locked for the call; both out-pointers are valid.
            let rc = unsafe {
                ffi::sqlite3_db_status(
                    handle.as_raw_handle().as_ptr(),
                    ffi::SQLITE_DBSTATUS_CACHE_USED,
                    &mut current,
                    &mut highest,
                    0,
                )
            };
            assert_eq!(rc, ffi::SQLITE_OK);
            current
        }
        let before = cache_used(&mut connection).await;
        assert!(before > 512 * 1024, "the read left {before} bytes cached");
        super::release_native_memory();
        let after = cache_used(&mut connection).await;
        assert!(after < before / 4, "{after} of {before} bytes are still cached");
    }
}
