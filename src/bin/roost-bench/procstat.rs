//! CPU time of a process from `/proc/PID/stat` (Linux).

use std::path::PathBuf;
use std::process::Command;

use super::BenchError;

/// Clock ticks per second of `/proc` CPU times (`sysconf(_SC_CLK_TCK)`). Read once through
/// `getconf` to avoid a libc dependency; Linux fixes it at 100 on every mainstream platform,
/// which is the fallback.
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|ticks| *ticks > 0)
        .unwrap_or(100)
}

/// User plus system CPU ticks (`utime + stime`, fields 14 and 15) from the text of
/// `/proc/PID/stat`. Field 2, `(comm)`, may itself contain spaces and parentheses, so the
/// fields are counted from after the *last* `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    // The first field after `)` is field 3 (state): utime is 11 further on, stime right after.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Reads the CPU time a process has used so far, in seconds.
#[derive(Debug, Clone)]
pub struct CpuClock {
    path: PathBuf,
    ticks_per_second: u64,
}

impl CpuClock {
    pub fn for_pid(pid: u32) -> CpuClock {
        CpuClock {
            path: PathBuf::from(format!("/proc/{pid}/stat")),
            ticks_per_second: clock_ticks_per_second(),
        }
    }

    pub fn for_self() -> CpuClock {
        CpuClock {
            path: PathBuf::from("/proc/self/stat"),
            ticks_per_second: clock_ticks_per_second(),
        }
    }

    pub fn seconds(&self) -> Result<f64, BenchError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| BenchError::ProcStat {
            path: self.path.clone(),
            source,
        })?;
        let ticks = parse_cpu_ticks(&text).ok_or_else(|| BenchError::ProcStatFormat {
            path: self.path.clone(),
        })?;
        Ok(ticks as f64 / self.ticks_per_second as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_plain_stat_line() {
        let line = "4242 (mosquitto) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 1 0 \
                    123456 12345678 1234 18446744073709551615";
        assert_eq!(parse_cpu_ticks(line), Some(325));
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_fields() {
        let line = "77 (my (odd) name) R 1 77 77 0 -1 0 0 0 0 0 9 1 0 0 20 0 4 0 1 2 3";
        assert_eq!(parse_cpu_ticks(line), Some(10));
    }

    #[test]
    fn truncated_or_garbled_lines_are_refused() {
        assert_eq!(parse_cpu_ticks("77 (x) R 1 2 3"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis at all"), None);
        assert_eq!(
            parse_cpu_ticks("7 (x) R 1 7 7 0 -1 0 0 0 0 0 ten 1 0"),
            None
        );
    }

    #[test]
    fn reads_this_process() {
        let clock = CpuClock::for_self();
        let mut spin = 0u64;
        for i in 0..5_000_000u64 {
            spin = spin.wrapping_add(i * i);
        }
        std::hint::black_box(spin);
        assert!(clock.seconds().unwrap() >= 0.0);
        assert!(clock_ticks_per_second() > 0);
    }
}
