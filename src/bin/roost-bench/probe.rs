//! Other clients' QoS 1 round trips while a load runs: a few clients with clean sessions on
//! a thread of their own (so that the load's work in this process cannot delay them), each
//! publishing to a topic it subscribes to and timing PUBLISH to PUBACK and delivery. Their
//! latency "before" (alone) and "during" (under the load) shows whether the load stalls the
//! broker for everyone (argon2 checks in `bad-logins`, the disk in `run --pingers`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::thread::JoinHandle;

use super::BenchError;
use super::client::{Connection, Transport};
use super::histogram::LatencyHistogram;
use super::retained::round_trip;
use roost::mqtt::ProtocolVersion;

/// Round-trip latencies alone and under the load.
pub type ProbeLatencies = (LatencyHistogram, LatencyHistogram);

/// Which histogram a round trip goes to.
const ALONE: u8 = 0;
const SETTLING: u8 = 1;
const UNDER_LOAD: u8 = 2;

/// The round-trip clients, running.
pub struct Probe {
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<ProbeLatencies, BenchError>>,
}

impl Probe {
    /// Connects `clients` round-trip clients and starts them; returns once they are
    /// connected. Until [`Probe::load_started`], their round trips count as "before".
    pub async fn start(
        address: SocketAddr,
        version: ProtocolVersion,
        clients: usize,
    ) -> Result<Probe, BenchError> {
        let phase = Arc::new(AtomicU8::new(ALONE));
        let stop = Arc::new(AtomicBool::new(false));
        let (connected_tx, connected) = tokio::sync::oneshot::channel();
        let thread = {
            let (phase, stop) = (phase.clone(), stop.clone());
            std::thread::spawn(move || {
                probe_thread(address, version, clients, phase, stop, connected_tx)
            })
        };
        let _ = connected.await;
        Ok(Probe {
            phase,
            stop,
            thread,
        })
    }

    /// The load is starting: round trips count for neither until [`Probe::load_started`]
    /// (its warm-up).
    pub fn settling(&self) {
        self.phase.store(SETTLING, Ordering::Relaxed);
    }

    /// From now on round trips count as "during".
    pub fn load_started(&self) {
        self.phase.store(UNDER_LOAD, Ordering::Relaxed);
    }

    /// Stops the clients and returns their latencies.
    pub async fn finish(self) -> Result<ProbeLatencies, BenchError> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|e| BenchError::Task(e.to_string()))?
            .map_err(|_| BenchError::Task("the round-trip clients' thread panicked".into()))?
    }
}

fn probe_thread(
    address: SocketAddr,
    version: ProtocolVersion,
    clients: usize,
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    connected: tokio::sync::oneshot::Sender<()>,
) -> Result<ProbeLatencies, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| BenchError::Io {
            context: "cannot start the round-trip clients' runtime",
            source,
        })?;
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for p in 0..clients {
            let mut connection =
                Connection::open(address, &Transport::tcp(), version, format!("lping-{p}")).await?;
            let (phase, stop) = (phase.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let topic = format!("lping/{p}");
                let (mut before, mut during) =
                    (LatencyHistogram::default(), LatencyHistogram::default());
                let mut packet_id: u16 = 1;
                while !stop.load(Ordering::Relaxed) {
                    let took = round_trip(&mut connection, &topic, packet_id).await?;
                    let nanos = took.as_nanos().min(u128::from(u64::MAX)) as u64;
                    match phase.load(Ordering::Relaxed) {
                        ALONE => before.record(nanos),
                        UNDER_LOAD => during.record(nanos),
                        _ => {}
                    }
                    packet_id = packet_id.checked_add(1).unwrap_or(1);
                }
                Ok::<_, BenchError>((before, during))
            }));
        }
        let _ = connected.send(());
        let (mut before, mut during) = (LatencyHistogram::default(), LatencyHistogram::default());
        for task in tasks {
            let (b, d) = task.await.map_err(|e| BenchError::Task(e.to_string()))??;
            before.merge(&b);
            during.merge(&d);
        }
        Ok((before, during))
    })
}
