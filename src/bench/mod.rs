//! `roost bench`: a load generator that measures any MQTT broker, and a side-by-side
//! comparison of roost with Mosquitto.
//!
//! The generator is its own lean client on top of [`crate::mqtt`]: tokio TCP, batched writes,
//! one pre-encoded PUBLISH patched per message, one clock for every client (send times travel
//! in the payload), and per-publisher sequence numbers for loss, duplicate and order checks.
//! The broker's CPU time comes from `/proc/PID/stat`.

mod cli;
mod client;
mod compare;
mod histogram;
mod procstat;
mod publisher;
mod retained;
mod run;
mod schedule;
mod sequence;
mod stamp;
mod subscriber;

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

pub use cli::{BenchCommand, run_command};
pub use compare::{CompareOptions, CompareReport, compare};
pub use histogram::LatencyHistogram;
pub use procstat::{CpuClock, parse_cpu_ticks};
pub use retained::{RetainedOptions, RetainedReport, SubscriberResult, run_retained};
pub use run::{RunOptions, RunReport, Scenario, run};
pub use sequence::{DeliveryCounts, SequenceTracker};

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
    Encode(#[from] crate::mqtt::EncodeError),
    #[error("cannot decode a packet from the broker: {0}")]
    Decode(#[from] crate::mqtt::DecodeError),
    #[error("the broker refused {what} of {client_id}: {reason}")]
    Refused {
        client_id: String,
        what: &'static str,
        reason: String,
    },
    #[error("expected {expected} from the broker, got {got}")]
    Unexpected {
        expected: crate::mqtt::PacketType,
        got: crate::mqtt::PacketType,
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
    #[error("interrupted")]
    Interrupted,
}

impl BenchError {
    fn io(context: &'static str, source: std::io::Error) -> Self {
        BenchError::Io { context, source }
    }
}
