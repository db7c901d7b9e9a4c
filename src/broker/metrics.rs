//! Counters shared by every task, read by [`super::BrokerHandle::stats`] without blocking.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Metrics {
    /// Open connections (before and after CONNECT), each holding one of the
    /// `limits.max_connections` slots.
    pub open_connections: AtomicU64,
    /// Open connections over WebSockets, counted once upgraded.
    pub websocket_connections: AtomicU64,
    /// Sockets refused at accept because every connection slot was taken.
    pub connections_refused: AtomicU64,
    /// Clients with an accepted CONNECT.
    pub clients_connected: AtomicU64,
    pub sessions: AtomicU64,
    pub subscriptions: AtomicU64,
    pub retained: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub messages_dropped: AtomicU64,
    /// Store operations that failed (a write not made durable, a record not removed).
    pub store_errors: AtomicU64,
    /// CONNECTs refused for their credentials (wrong, missing or unknown).
    pub auth_failures: AtomicU64,
    /// PUBLISHes and SUBSCRIBE filters refused by the topic permissions.
    pub publishes_denied: AtomicU64,
    pub subscriptions_denied: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// f64 bits of the per-second rates, refreshed once a second by the router.
    pub received_per_sec: AtomicU64,
    pub sent_per_sec: AtomicU64,
    /// f64 bits of the one-minute load averages in messages per minute, as Mosquitto's
    /// `$SYS/broker/load/messages/.../1min`.
    pub received_load_1min: AtomicU64,
    pub sent_load_1min: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    pub fn set(counter: &AtomicU64, value: u64) {
        counter.store(value, Relaxed);
    }

    pub fn rate(counter: &AtomicU64) -> f64 {
        f64::from_bits(counter.load(Relaxed))
    }

    pub fn set_rate(counter: &AtomicU64, value: f64) {
        counter.store(value.to_bits(), Relaxed);
    }
}

/// Computes the per-second rates from the counters, once a second.
#[derive(Debug)]
pub struct RateMeter {
    last_received: u64,
    last_sent: u64,
    last_at: std::time::Instant,
}

impl RateMeter {
    pub fn new(metrics: &Metrics) -> RateMeter {
        RateMeter {
            last_received: Metrics::get(&metrics.messages_received),
            last_sent: Metrics::get(&metrics.messages_sent),
            last_at: std::time::Instant::now(),
        }
    }

    pub fn update(&mut self, metrics: &Metrics) {
        let now = std::time::Instant::now();
        let secs = now.duration_since(self.last_at).as_secs_f64();
        if secs <= 0.0 {
            return;
        }
        let received = Metrics::get(&metrics.messages_received);
        let sent = Metrics::get(&metrics.messages_sent);
        let received_rate = received.saturating_sub(self.last_received) as f64 / secs;
        let sent_rate = sent.saturating_sub(self.last_sent) as f64 / secs;
        Metrics::set_rate(&metrics.received_per_sec, received_rate);
        Metrics::set_rate(&metrics.sent_per_sec, sent_rate);
        // Exponentially weighted over a minute, in messages per minute.
        let weight = (-secs / 60.0).exp();
        for (load, rate) in [
            (&metrics.received_load_1min, received_rate),
            (&metrics.sent_load_1min, sent_rate),
        ] {
            let previous = Metrics::rate(load);
            Metrics::set_rate(load, previous * weight + rate * 60.0 * (1.0 - weight));
        }
        self.last_received = received;
        self.last_sent = sent;
        self.last_at = now;
    }
}
