//! Wall time and CPU time (getrusage) and peak RSS (`/proc/self/status`) of this process.

use std::time::Instant;

pub struct Meter {
    wall: Instant,
    cpu: f64,
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

impl Meter {
    pub fn start() -> Meter {
        Meter {
            wall: Instant::now(),
            cpu: cpu_seconds(),
        }
    }

    /// Wall seconds and CPU seconds since `start`.
    pub fn stop(&self) -> (f64, f64) {
        (self.wall.elapsed().as_secs_f64(), cpu_seconds() - self.cpu)
    }
}

/// Peak resident set size of this process in MiB: `VmHWM` from `/proc/self/status`
/// (WORKLOADS.md section 4.1). Not `getrusage`'s `ru_maxrss`, which Linux keeps across
/// `exec` and so reports at least the parent's peak (cargo's, about 68 MB).
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
