//! This disk's single-writer fsync rate: append 64 bytes, fsync, as fast as it goes. The
//! unbuffered storage modes are bound by it (group commit lets many publishers share one
//! fsync), so the storage benchmark measures it in the same run, next to the brokers' data.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::BenchError;

/// How many fsyncs one writer completed per second, and where.
#[derive(Debug, Clone)]
pub struct FsyncRate {
    pub per_second: f64,
    pub count: u64,
    pub elapsed: Duration,
    pub directory: PathBuf,
}

impl std::fmt::Display for FsyncRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} fsyncs/s ({} in {:.1} s, 64-byte appends, {})",
            self.per_second,
            self.count,
            self.elapsed.as_secs_f64(),
            self.directory.display()
        )
    }
}

/// Appends 64 bytes and fsyncs (`File::sync_all`) in a loop for `duration`, in a scratch file
/// in `directory` that is removed afterwards. Blocking: run it off the runtime's threads.
pub fn measure_fsync_rate(directory: &Path, duration: Duration) -> Result<FsyncRate, BenchError> {
    let path = directory.join(format!("roost-bench-fsync-{}", std::process::id()));
    let io = |context| move |source| BenchError::Io { context, source };
    let mut file = std::fs::File::create(&path).map_err(io("cannot create the fsync file"))?;
    let block = [b'x'; 64];
    let started = Instant::now();
    let mut count = 0u64;
    let result = loop {
        if started.elapsed() >= duration {
            break Ok(());
        }
        if let Err(source) = file.write_all(&block).and_then(|()| file.sync_all()) {
            break Err(BenchError::Io {
                context: "cannot append to and fsync the fsync file",
                source,
            });
        }
        count += 1;
    };
    let elapsed = started.elapsed();
    // A left-over scratch file changes no result.
    let _ = std::fs::remove_file(&path);
    result?;
    Ok(FsyncRate {
        per_second: count as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        count,
        elapsed,
        directory: directory.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fsyncs_and_removes_its_file() {
        let directory = std::env::temp_dir();
        let rate = measure_fsync_rate(&directory, Duration::from_millis(50)).unwrap();
        assert!(rate.count > 0);
        assert!(rate.per_second > 0.0);
        assert!(rate.elapsed >= Duration::from_millis(50));
        assert!(
            !directory
                .join(format!("roost-bench-fsync-{}", std::process::id()))
                .exists()
        );
        assert!(rate.to_string().contains("fsyncs/s"));
    }
}
