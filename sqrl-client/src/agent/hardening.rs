//! Keeping the agent's unlocked keys off disk: no core dump can hold them
//! (`RLIMIT_CORE` 0, and the process not dumpable, which also keeps debuggers
//! of the same user from attaching), and its memory locked so that it is never
//! written to swap, where the system allows it.

use nix::sys::mman::{MlockAllFlags, mlockall};
use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};

/// What hardening achieved.
#[derive(Debug, Clone, Copy)]
pub struct Hardened {
    /// Core dumps are off and the process is not dumpable.
    pub no_dumps: bool,
    /// All memory, present and future, is locked into RAM.
    pub memory_locked: bool,
}

/// Hardens the current process; call before any secret is read.
pub fn harden() -> Hardened {
    let no_core = setrlimit(Resource::RLIMIT_CORE, 0, 0).is_ok();
    #[cfg(target_os = "linux")]
    let not_dumpable = nix::sys::prctl::set_dumpable(false).is_ok();
    // Elsewhere the core limit is what there is.
    #[cfg(not(target_os = "linux"))]
    let not_dumpable = true;
    Hardened {
        no_dumps: no_core && not_dumpable,
        memory_locked: lock_memory(),
    }
}

/// Locks all memory if the locked-memory limit is (or can be made) unlimited,
/// or does not apply. Under a finite limit it does nothing: locking future
/// allocations would make the agent fail once it outgrew the limit.
fn lock_memory() -> bool {
    let unlimited = match getrlimit(Resource::RLIMIT_MEMLOCK) {
        Ok((soft, _)) if soft == RLIM_INFINITY => true,
        Ok((_, hard)) if hard == RLIM_INFINITY => {
            setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY).is_ok()
        }
        // Raising the hard limit needs privilege; try, as root may have it.
        Ok(_) => setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY).is_ok(),
        Err(_) => false,
    };
    (unlimited || may_lock_any_amount())
        && mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE).is_ok()
}

/// Whether this process holds `CAP_IPC_LOCK`, which exempts it from the
/// locked-memory limit (root usually does, also where it may not raise limits).
fn may_lock_any_amount() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}
