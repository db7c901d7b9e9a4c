//! Commands run around each measured round, so that the load of a shared machine can be
//! paused for exactly the rounds (for example a script that stops compilers with SIGSTOP),
//! with a gap between rounds for that load to catch up.

use std::process::Command;
use std::time::Duration;

use super::BenchError;

#[derive(Debug, Clone, Default)]
pub struct RoundHooks {
    /// A shell command run (`sh -c`) before each round.
    pub before: Option<String>,
    /// A shell command run after each round.
    pub after: Option<String>,
    /// Time between rounds, before the next `before` command.
    pub gap: Duration,
}

impl RoundHooks {
    /// Waits for the gap (not before the first round), then runs the `before` command.
    pub async fn before_round(&self, round: usize) -> Result<(), BenchError> {
        if round > 0 && !self.gap.is_zero() {
            eprintln!(
                "waiting {:.0} s before the next round",
                self.gap.as_secs_f64()
            );
            tokio::time::sleep(self.gap).await;
        }
        run_hook(self.before.as_deref()).await
    }

    pub async fn after_round(&self) -> Result<(), BenchError> {
        run_hook(self.after.as_deref()).await
    }
}

async fn run_hook(command: Option<&str>) -> Result<(), BenchError> {
    let Some(command) = command else {
        return Ok(());
    };
    let status = tokio::process::Command::from(shell(command))
        .status()
        .await
        .map_err(|source| BenchError::Spawn {
            program: "sh".to_string(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::InvalidOptions(format!(
            "the round command `{command}` failed ({status})"
        )))
    }
}

fn shell(command: &str) -> Command {
    let mut shell = Command::new("sh");
    // The hook's output goes to stderr, with the progress lines, not into the report.
    shell.arg("-c").arg(format!("exec 1>&2; {command}"));
    shell
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hooks_run_in_order_and_a_failing_one_is_an_error() {
        let file = std::env::temp_dir().join(format!("roost-bench-hooks-{}", std::process::id()));
        let hooks = RoundHooks {
            before: Some(format!("echo before >> {}", file.display())),
            after: Some(format!("echo after >> {}", file.display())),
            gap: Duration::ZERO,
        };
        hooks.before_round(0).await.unwrap();
        hooks.after_round().await.unwrap();
        let written = std::fs::read_to_string(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(written, "before\nafter\n");
        let failing = RoundHooks {
            before: Some("exit 3".to_string()),
            ..RoundHooks::default()
        };
        assert!(failing.before_round(1).await.is_err());
        RoundHooks::default().after_round().await.unwrap();
    }
}
