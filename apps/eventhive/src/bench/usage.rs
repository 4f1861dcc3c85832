//! CPU and peak memory of the server processes over the timed part, read from `/proc`, so it
//! is Linux only (elsewhere the report says it was not measured). When the platform runs in
//! this process, that is this process, and the load driver's own work is counted with it; with
//! `--url`, the processes named by `--pids`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Which processes are measured.
#[derive(Debug, Clone)]
pub enum Servers {
    /// The platform runs in this process, beside the load driver.
    ThisProcess,
    Pids(Vec<u32>),
}

impl Servers {
    fn pids(&self) -> Vec<String> {
        match self {
            Self::ThisProcess => vec!["self".to_owned()],
            Self::Pids(pids) => pids.iter().map(u32::to_string).collect(),
        }
    }
}

/// CPU time at the start of the timed part.
pub struct Meter {
    servers: Servers,
    started: Instant,
    cpu: Option<Duration>,
}

/// What the servers used over the timed part.
#[derive(Debug, Clone)]
pub struct Usage {
    pub servers: Servers,
    pub wall: Duration,
    /// User + system time of all the processes; `None` where `/proc` could not be read.
    pub cpu: Option<Duration>,
    /// Each process's peak resident set (VmHWM), in KiB, over its whole life.
    pub peak_rss_kib: Vec<(String, Option<u64>)>,
}

impl Meter {
    pub fn start(servers: Servers) -> Self {
        let cpu = cpu(&servers);
        Self { servers, started: Instant::now(), cpu }
    }

    pub fn finish(self) -> Usage {
        let wall = self.started.elapsed();
        let cpu = match (self.cpu, cpu(&self.servers)) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before)),
            _ => None,
        };
        let peak_rss_kib = self.servers.pids().into_iter().map(|pid| (pid.clone(), peak_rss_kib(&pid))).collect();
        Usage { servers: self.servers, wall, cpu, peak_rss_kib }
    }
}

impl Usage {
    /// CPU time over wall time, 100% being one core busy.
    pub fn cpu_percent(&self) -> Option<f64> {
        let wall = self.wall.as_secs_f64();
        self.cpu.filter(|_| wall > 0.0).map(|cpu| 100.0 * cpu.as_secs_f64() / wall)
    }

    fn whose(&self) -> String {
        match &self.servers {
            Servers::ThisProcess => "this process: the platform and the load driver share it".to_owned(),
            Servers::Pids(pids) => {
                format!("pids {}", pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", "))
            }
        }
    }

    pub fn print(&self) {
        match (self.cpu, self.cpu_percent()) {
            (Some(cpu), Some(percent)) => println!(
                "  servers' CPU: {:.2} s over {:.2} s, {percent:.0}% of one core ({})",
                cpu.as_secs_f64(),
                self.wall.as_secs_f64(),
                self.whose()
            ),
            _ => println!("  servers' CPU: not measured (read from /proc, Linux only) ({})", self.whose()),
        }
        let rss: Vec<String> = self
            .peak_rss_kib
            .iter()
            .map(|(pid, kib)| match kib {
                Some(kib) => format!("{pid} {:.0} MiB", *kib as f64 / 1024.0),
                None => format!("{pid} not measured"),
            })
            .collect();
        println!("  peak RSS (VmHWM, over the process's life): {}", rss.join(", "));
    }

    pub fn json(&self) -> Value {
        json!({
            "processes": self.whose(),
            "wall_seconds": self.wall.as_secs_f64(),
            "cpu_seconds": self.cpu.map(|cpu| cpu.as_secs_f64()),
            "cpu_percent_of_one_core": self.cpu_percent(),
            "peak_rss_mib": self.peak_rss_kib.iter()
                .map(|(pid, kib)| json!({"pid": pid, "mib": kib.map(|kib| kib as f64 / 1024.0)}))
                .collect::<Vec<_>>(),
        })
    }
}

/// User + system time of every process, from `/proc/<pid>/stat`; `None` if one cannot be read.
fn cpu(servers: &Servers) -> Option<Duration> {
    let ticks_per_second = clock_ticks_per_second();
    let mut ticks = 0_u64;
    for pid in servers.pids() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces and parentheses: count from its last ')'.
        // After it, field 3 (the state) comes first, so utime (14) and stime (15) are 11 and 12.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        ticks += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    }
    Some(Duration::from_secs_f64(ticks as f64 / ticks_per_second as f64))
}

/// VmHWM from `/proc/<pid>/status`, in KiB.
fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The kernel's USER_HZ, in which `/proc/<pid>/stat` counts CPU time: AT_CLKTCK in this
/// process's auxiliary vector (pairs of native words), without a libc binding for `sysconf`.
/// 100 on every common Linux, which is the fallback.
fn clock_ticks_per_second() -> u64 {
    const AT_CLKTCK: u64 = 17;
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else { return 100 };
    const WORD: usize = std::mem::size_of::<usize>();
    let read = |bytes: &[u8]| <[u8; WORD]>::try_from(bytes).map_or(0, |word| usize::from_ne_bytes(word) as u64);
    auxv.chunks_exact(2 * WORD)
        .map(|pair| (read(&pair[..WORD]), read(&pair[WORD..])))
        .find(|&(key, _)| key == AT_CLKTCK)
        .map_or(100, |(_, value)| value.max(1))
}
