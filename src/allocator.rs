//! The process's memory allocator: mimalloc, told to hand freed memory back to the OS at once.
//!
//! Under load, glibc's malloc took about a fifth of the CPU in `malloc`/`free` and more again
//! waiting on its arena locks, because much memory is freed on another thread than the one that
//! made it (SQLite's worker thread, the group-commit writer). mimalloc raised click2call creation
//! by about 60 % (BENCHMARKS.md). Two settings keep its memory use in line:
//! - transparent huge pages are off for the process (the `no_thp` feature): with them, each new
//!   2 MiB region was zeroed whole on its first touch, which cost CPU and resident memory;
//! - freed pages are purged at once instead of after mimalloc's default 1 s. The delayed purge
//!   only runs when the allocator is next busy, so an idle server kept ~40 MiB it no longer used.
//!   `MIMALLOC_PURGE_DELAY` in the environment still wins.
//!
//! It lives in the library so the binary, the tests and the benchmarks all run on the same one.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e`, which `libmimalloc-sys` does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes freed memory go back to the OS at once, unless `MIMALLOC_PURGE_DELAY` says otherwise.
/// Call it first thing in `main`.
pub fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting a mimalloc option is a plain store into mimalloc's option table, valid
        // at any time; 15 is `mi_option_purge_delay` in the vendored mimalloc.h (v2 and v3).
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}
