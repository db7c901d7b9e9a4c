//! `roost-bench`: a load generator that measures any MQTT broker, and a side-by-side
//! comparison of roost with Mosquitto.
//!
//! It is a tool next to the broker, not part of it: its own binary on top of the library's
//! wire codec ([`roost::mqtt`]). The generator is a lean client: tokio TCP, batched writes,
//! one pre-encoded PUBLISH patched per message, one clock for every client (send times travel
//! in the payload), and per-publisher sequence numbers for loss, duplicate and order checks.
//! The broker's CPU time comes from `/proc/PID/stat`.
//!
//! `roost-bench run` drives one scenario against any broker, over TCP, TLS or WebSockets;
//! `roost-bench connections` measures new connections per second; `roost-bench compare`
//! starts `roost serve` and Mosquitto and runs the standard scenarios against both (with
//! `--tls`, the TLS ones, both brokers using certificates made by roost); `roost-bench
//! storage` runs QoS 1 through each of roost's storage modes beside Mosquitto with
//! persistence, and `roost-bench restart` times a restart with a large store.

mod bad_logins;
mod brokers;
mod cli;
mod client;
mod compare;
mod connect_rate;
mod fsync;
mod histogram;
mod hooks;
mod probe;
mod procstat;
mod publisher;
mod restart;
mod retained;
mod run;
mod schedule;
mod sequence;
mod stamp;
mod storage;
mod subscriber;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use thiserror::Error;

use cli::BenchCommand;

#[derive(Debug, Parser)]
#[command(
    name = "roost-bench",
    version,
    about = "Measure an MQTT broker's throughput, latency, loss and CPU cost"
)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("roost-bench: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run_command(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("roost-bench: {}", error_report(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out causes the message already quotes.
fn error_report(err: &BenchError) -> String {
    let mut report = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !report.contains(&cause_text) {
            report.push_str(": ");
            report.push_str(&cause_text);
        }
        source = cause.source();
    }
    report
}

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("invalid benchmark options: {0}")]
    InvalidOptions(String),
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode a packet: {0}")]
    Encode(#[from] roost::mqtt::EncodeError),
    #[error("cannot decode a packet from the broker: {0}")]
    Decode(#[from] roost::mqtt::DecodeError),
    #[error("the broker refused {what} of {client_id}: {reason}")]
    Refused {
        client_id: String,
        what: &'static str,
        reason: String,
    },
    #[error("expected {expected} from the broker, got {got}")]
    Unexpected {
        expected: roost::mqtt::PacketType,
        got: roost::mqtt::PacketType,
    },
    #[error("the broker closed the connection of {client_id}")]
    Closed { client_id: String },
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("the encoded PUBLISH does not have the layout the specification gives")]
    Template,
    #[error("cannot read {path}: {source}")]
    ProcStat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} does not have the expected format")]
    ProcStatFormat { path: PathBuf },
    #[error("a benchmark task failed: {0}")]
    Task(String),
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{broker} did not accept connections on {address} within {seconds} s")]
    BrokerNotReady {
        broker: String,
        address: SocketAddr,
        seconds: u64,
    },
    #[error("{broker} exited early ({status})")]
    BrokerExited { broker: String, status: String },
    #[error("{context}: {source}")]
    Tls {
        context: String,
        #[source]
        source: rustls::Error,
    },
    #[error(transparent)]
    Pki(#[from] roost::pki::PkiError),
    #[error("`{command}` failed: {message}")]
    Certificates { command: String, message: String },
    #[error("interrupted")]
    Interrupted,
}

impl BenchError {
    fn io(context: &'static str, source: std::io::Error) -> Self {
        BenchError::Io { context, source }
    }
}
