//! The process's open-file limit. Every connection holds a socket, and the usual soft limit
//! (often 1,024) is far below `limits.max_connections`: the soft limit is raised to the hard
//! one, and a hard limit still too low is reported, since connections past it would be
//! refused by the system, not by roost.

/// Descriptors beyond the connections: listeners, the store, log files.
const SPARE: u64 = 64;

/// Raises the soft open-file limit to the hard one and warns when the result cannot hold
/// `max_connections` connections. Cheap and idempotent: called on every apply.
pub fn ensure_room_for(max_connections: u32) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < u64::from(max_connections) + SPARE => tracing::warn!(
            open_file_limit = limit,
            max_connections,
            "the open-file limit is too low for limits.max_connections: connections past about \
             {} will fail to be accepted; raise the hard limit (ulimit -Hn, LimitNOFILE)",
            limit.saturating_sub(SPARE)
        ),
        Ok(limit) => tracing::debug!(open_file_limit = limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}
