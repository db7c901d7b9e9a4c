//! The Clients view's state: the filter, the sort order and the rows they select, kept as
//! indices into the broker's list so that 10,000 clients are filtered and sorted once per
//! refresh, not once per frame.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::broker::{ClientDetail, ClientInfo};

/// A sortable column of the Clients table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientColumn {
    ClientId,
    Address,
    User,
    /// The transport: tcp, tls, ws or wss.
    Transport,
    Protocol,
    Subscriptions,
    Inflight,
    Queued,
    MessagesIn,
    MessagesOut,
    Dropped,
    Rate,
    Since,
}

impl ClientColumn {
    pub const ALL: [ClientColumn; 13] = [
        ClientColumn::ClientId,
        ClientColumn::Address,
        ClientColumn::User,
        ClientColumn::Transport,
        ClientColumn::Protocol,
        ClientColumn::Subscriptions,
        ClientColumn::Inflight,
        ClientColumn::Queued,
        ClientColumn::MessagesIn,
        ClientColumn::MessagesOut,
        ClientColumn::Dropped,
        ClientColumn::Rate,
        ClientColumn::Since,
    ];

    pub fn title(self) -> &'static str {
        match self {
            ClientColumn::ClientId => "Client ID",
            ClientColumn::Address => "Address",
            ClientColumn::User => "User",
            ClientColumn::Transport => "Via",
            ClientColumn::Protocol => "Proto",
            ClientColumn::Subscriptions => "Subs",
            ClientColumn::Inflight => "Infl",
            ClientColumn::Queued => "Queue",
            ClientColumn::MessagesIn => "In",
            ClientColumn::MessagesOut => "Out",
            ClientColumn::Dropped => "Drop",
            ClientColumn::Rate => "Msg/s",
            ClientColumn::Since => "Since",
        }
    }

    fn next(self) -> ClientColumn {
        let index = ClientColumn::ALL
            .iter()
            .position(|c| *c == self)
            .unwrap_or(0);
        ClientColumn::ALL[(index + 1) % ClientColumn::ALL.len()]
    }

    fn compare(self, a: &Row, b: &Row) -> Ordering {
        let (rate_a, rate_b) = (a.rate, b.rate);
        let (a, b) = (&a.info, &b.info);
        match self {
            ClientColumn::MessagesIn => a.messages_in.cmp(&b.messages_in),
            ClientColumn::MessagesOut => a.messages_out.cmp(&b.messages_out),
            ClientColumn::Dropped => a.dropped.cmp(&b.dropped),
            ClientColumn::Rate => rate_a.total_cmp(&rate_b),
            ClientColumn::ClientId => a.client_id.cmp(&b.client_id),
            ClientColumn::Address => a.address.cmp(&b.address),
            ClientColumn::User => a.username.cmp(&b.username),
            ClientColumn::Transport => a.listener.transport().cmp(b.listener.transport()),
            ClientColumn::Protocol => a.protocol.to_string().cmp(&b.protocol.to_string()),
            ClientColumn::Subscriptions => a.subscriptions.cmp(&b.subscriptions),
            ClientColumn::Inflight => a.inflight.cmp(&b.inflight),
            ClientColumn::Queued => a.queued.cmp(&b.queued),
            ClientColumn::Since => a.connected_since.cmp(&b.connected_since),
        }
        // Ties in id order, so that rows do not jump between refreshes.
        .then_with(|| a.client_id.cmp(&b.client_id))
    }
}

/// One client and its message rate since the previous refresh.
#[derive(Debug, Clone)]
pub struct Row {
    pub info: ClientInfo,
    /// Messages in and out per second over the last refresh interval.
    pub rate: f64,
}

#[derive(Debug, Clone)]
pub struct ClientList {
    pub all: Vec<Row>,
    /// When `all` was refreshed, for the rates.
    refreshed_at: Option<std::time::Instant>,
    /// Indices into `all` of the rows shown, filtered and sorted.
    pub view: Vec<usize>,
    pub filter: String,
    pub sort: ClientColumn,
    pub descending: bool,
    /// Whether the detail pane is open.
    pub detail: bool,
    /// The client the detail pane shows: the selected one, kept when it disconnects so that
    /// the pane can show its session counting down.
    pub detail_of: Option<Arc<str>>,
    /// The broker's last answer about `detail_of`; `None` until it came.
    pub details: Option<Fetched>,
}

/// One client's details as fetched: `detail` is `None` when the broker has no session for
/// the client any more.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub client_id: Arc<str>,
    pub detail: Option<Box<ClientDetail>>,
}

impl Default for ClientList {
    fn default() -> Self {
        ClientList {
            all: Vec::new(),
            refreshed_at: None,
            view: Vec::new(),
            filter: String::new(),
            sort: ClientColumn::ClientId,
            descending: false,
            detail: false,
            detail_of: None,
            details: None,
        }
    }
}

impl ClientList {
    pub fn set(&mut self, clients: Vec<ClientInfo>) {
        self.set_at(clients, std::time::Instant::now());
    }

    /// Replaces the list as refreshed at `now`; a client's rate is its messages in and out
    /// since the previous refresh of the same connection (same id, same connect time).
    pub fn set_at(&mut self, clients: Vec<ClientInfo>, now: std::time::Instant) {
        let elapsed = self
            .refreshed_at
            .map(|at| now.saturating_duration_since(at).as_secs_f64())
            .filter(|secs| *secs > 0.0);
        let previous: std::collections::HashMap<&str, &ClientInfo> = self
            .all
            .iter()
            .map(|row| (&*row.info.client_id, &row.info))
            .collect();
        let rows: Vec<Row> = clients
            .into_iter()
            .map(|info| {
                let rate = match (elapsed, previous.get(&*info.client_id)) {
                    (Some(secs), Some(before))
                        if before.connected_since == info.connected_since =>
                    {
                        let total = info.messages_in + info.messages_out;
                        let total_before = before.messages_in + before.messages_out;
                        total.saturating_sub(total_before) as f64 / secs
                    }
                    _ => 0.0,
                };
                Row { info, rate }
            })
            .collect();
        self.all = rows;
        self.refreshed_at = Some(now);
        self.refresh();
    }

    /// The details fetched for the client the pane shows, if they are about it.
    pub fn shown_detail(&self) -> Option<&Fetched> {
        let of = self.detail_of.as_ref()?;
        self.details.as_ref().filter(|d| d.client_id == *of)
    }

    /// Points the detail pane at `client_id`; true when that is a change (its details are to
    /// be fetched).
    pub fn show_detail_of(&mut self, client_id: Option<Arc<str>>) -> bool {
        if self.detail_of == client_id {
            return false;
        }
        self.detail_of = client_id;
        true
    }

    /// Keeps the broker's answer when it is about the client shown.
    pub fn set_detail(&mut self, client_id: &str, detail: Option<Box<ClientDetail>>) {
        if self.detail_of.as_deref() == Some(client_id) {
            self.details = Some(Fetched {
                client_id: client_id.into(),
                detail,
            });
        }
    }

    pub fn set_filter(&mut self, filter: &str) {
        self.filter = filter.to_string();
        self.refresh();
    }

    /// The next column, ascending; the same column again reverses the order.
    pub fn sort_by_next_column(&mut self) {
        self.sort = self.sort.next();
        self.descending = false;
        self.refresh();
    }

    pub fn reverse(&mut self) {
        self.descending = !self.descending;
        self.refresh();
    }

    pub fn len(&self) -> usize {
        self.view.len()
    }

    pub fn is_empty(&self) -> bool {
        self.view.is_empty()
    }

    /// The client on row `row` of the view.
    pub fn row(&self, row: usize) -> Option<&ClientInfo> {
        self.view
            .get(row)
            .and_then(|&index| self.all.get(index))
            .map(|row| &row.info)
    }

    /// The rate of the client on row `row` of the view.
    pub fn rate(&self, row: usize) -> f64 {
        self.view
            .get(row)
            .and_then(|&index| self.all.get(index))
            .map_or(0.0, |row| row.rate)
    }

    /// The view's row of `client_id`.
    pub fn position(&self, client_id: &str) -> Option<usize> {
        self.view
            .iter()
            .position(|&index| &*self.all[index].info.client_id == client_id)
    }

    /// The ids of every client the filter shows.
    pub fn matching_ids(&self) -> Vec<String> {
        self.view
            .iter()
            .map(|&index| self.all[index].info.client_id.to_string())
            .collect()
    }

    fn refresh(&mut self) {
        let needle = self.filter.to_lowercase();
        let mut view: Vec<usize> = (0..self.all.len())
            .filter(|&index| needle.is_empty() || matches(&self.all[index].info, &needle))
            .collect();
        let column = self.sort;
        view.sort_by(|&a, &b| column.compare(&self.all[a], &self.all[b]));
        if self.descending {
            view.reverse();
        }
        self.view = view;
    }
}

/// Case-insensitive substring match on the client id, the address or the user name.
fn matches(client: &ClientInfo, needle: &str) -> bool {
    client.client_id.to_lowercase().contains(needle)
        || client.address.to_string().contains(needle)
        || client
            .username
            .as_deref()
            .is_some_and(|user| user.to_lowercase().contains(needle))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant, SystemTime};

    use super::*;
    use crate::broker::ListenerKind;
    use crate::mqtt::ProtocolVersion;

    fn client(id: &str, messages_in: u64, since: u64) -> ClientInfo {
        ClientInfo {
            client_id: id.into(),
            address: SocketAddr::from(([127, 0, 0, 1], 1)),
            listener: ListenerKind::Tcp,
            protocol: ProtocolVersion::V5,
            username: None,
            keep_alive_secs: 60,
            subscriptions: 0,
            inflight: 0,
            queued: 0,
            connected_since: SystemTime::UNIX_EPOCH + Duration::from_secs(since),
            messages_in,
            messages_out: 0,
            dropped: 0,
        }
    }

    #[test]
    fn rates_come_from_the_counts_between_refreshes() {
        let mut list = ClientList::default();
        let start = Instant::now();
        list.set_at(vec![client("busy", 100, 1), client("idle", 5, 1)], start);
        assert_eq!(list.rate(0), 0.0, "no rate before a second refresh");
        list.set_at(
            vec![
                client("busy", 300, 1),
                client("idle", 5, 1),
                // Reconnected: its counts started again, no rate yet.
                client("new", 50, 2),
            ],
            start + Duration::from_secs(2),
        );
        list.sort = ClientColumn::Rate;
        list.descending = true;
        list.refresh();
        assert_eq!(&*list.row(0).unwrap().client_id, "busy");
        assert_eq!(list.rate(0), 100.0);
        assert_eq!(list.rate(1), 0.0);
    }
}
