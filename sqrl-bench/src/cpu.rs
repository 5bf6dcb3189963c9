//! CPU time: the server process's (from `/proc`) around the measured
//! window, and this thread's own (for the Ed25519 floor).

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};
use nix::unistd::{SysconfVar, sysconf};

/// Why a process's CPU time cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CpuError {
    /// `/proc/PID/stat` could not be read (no such process, or no `/proc`).
    #[error("cannot read /proc/{pid}/stat: {source}")]
    Read {
        /// The process.
        pid: u32,
        /// Why.
        source: std::io::Error,
    },
    /// The file did not have the fields `proc(5)` documents.
    #[error("/proc/{0}/stat is not in the expected format")]
    Format(u32),
    /// The kernel's clock tick (`sysconf(_SC_CLK_TCK)`) is unknown.
    #[error("cannot read the clock tick (sysconf CLK_TCK)")]
    ClockTick,
}

/// Reads the user and system CPU time of a process. `/proc/PID/stat` already
/// sums all of the process's threads, including ones that have exited.
#[derive(Debug, Clone)]
pub struct ProcessCpu {
    pid: u32,
    ticks_per_second: u64,
    name: String,
}

impl ProcessCpu {
    /// Checks that `pid` can be read now.
    pub fn open(pid: u32) -> Result<Self, CpuError> {
        let ticks_per_second = sysconf(SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|ticks| u64::try_from(ticks).ok())
            .filter(|ticks| *ticks > 0)
            .ok_or(CpuError::ClockTick)?;
        let text = read_stat(pid)?;
        let (name, _) = parse_stat(&text).ok_or(CpuError::Format(pid))?;
        Ok(Self {
            pid,
            ticks_per_second,
            name,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The process's command name (`comm`), to show what was measured.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// User plus system CPU time so far (resolution: one clock tick, 10 ms
    /// on common kernels; a 20 s window makes that small).
    pub fn used(&self) -> Result<Duration, CpuError> {
        let text = read_stat(self.pid)?;
        let (_, ticks) = parse_stat(&text).ok_or(CpuError::Format(self.pid))?;
        Ok(Duration::from_secs_f64(
            ticks as f64 / self.ticks_per_second as f64,
        ))
    }

    /// The clock tick the times are counted in.
    pub fn tick(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.ticks_per_second as f64)
    }
}

fn read_stat(pid: u32) -> Result<String, CpuError> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|source| CpuError::Read { pid, source })
}

/// The command name and `utime + stime` (clock ticks) of a `/proc/PID/stat`
/// line. The name is in parentheses and may itself hold spaces and
/// parentheses, so the fields are counted from the last `)`: after it come
/// `state` (field 3 of proc(5)), ... `utime` (14) and `stime` (15).
fn parse_stat(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// The CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`):
/// unlike wall time, it does not count time the thread was preempted.
pub fn thread_time() -> Option<Duration> {
    let spec = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    let secs = u64::try_from(spec.tv_sec()).ok()?;
    let nanos = u32::try_from(spec.tv_nsec()).ok()?;
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_odd_names() {
        let line =
            "1234 (sqrl (x) srv) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_stat(line), Some(("sqrl (x) srv".to_owned(), 325)));
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = ProcessCpu::open(std::process::id()).unwrap();
        let before = me.used().unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(me.used().unwrap() >= before);
        assert!(!me.name().is_empty());
        assert!(thread_time().is_some());
    }

    #[test]
    fn a_missing_process_is_an_error() {
        assert!(ProcessCpu::open(u32::MAX).is_err());
    }
}
