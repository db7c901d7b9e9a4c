//! The Clients view's state: the filter, the sort order and the rows they select, kept as
//! indices into the broker's list so that 10,000 clients are filtered and sorted once per
//! refresh, not once per frame.

use std::cmp::Ordering;

use crate::broker::ClientInfo;

/// A sortable column of the Clients table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientColumn {
    ClientId,
    Address,
    User,
    Protocol,
    Subscriptions,
    Inflight,
    Queued,
    Since,
}

impl ClientColumn {
    pub const ALL: [ClientColumn; 8] = [
        ClientColumn::ClientId,
        ClientColumn::Address,
        ClientColumn::User,
        ClientColumn::Protocol,
        ClientColumn::Subscriptions,
        ClientColumn::Inflight,
        ClientColumn::Queued,
        ClientColumn::Since,
    ];

    pub fn title(self) -> &'static str {
        match self {
            ClientColumn::ClientId => "Client ID",
            ClientColumn::Address => "Address",
            ClientColumn::User => "User",
            ClientColumn::Protocol => "Proto",
            ClientColumn::Subscriptions => "Subs",
            ClientColumn::Inflight => "Infl",
            ClientColumn::Queued => "Queue",
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

    fn compare(self, a: &ClientInfo, b: &ClientInfo) -> Ordering {
        match self {
            ClientColumn::ClientId => a.client_id.cmp(&b.client_id),
            ClientColumn::Address => a.address.cmp(&b.address),
            ClientColumn::User => a.username.cmp(&b.username),
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

#[derive(Debug, Clone)]
pub struct ClientList {
    pub all: Vec<ClientInfo>,
    /// Indices into `all` of the rows shown, filtered and sorted.
    pub view: Vec<usize>,
    pub filter: String,
    pub sort: ClientColumn,
    pub descending: bool,
    /// Whether the detail pane of the selected client is open.
    pub detail: bool,
}

impl Default for ClientList {
    fn default() -> Self {
        ClientList {
            all: Vec::new(),
            view: Vec::new(),
            filter: String::new(),
            sort: ClientColumn::ClientId,
            descending: false,
            detail: false,
        }
    }
}

impl ClientList {
    pub fn set(&mut self, clients: Vec<ClientInfo>) {
        self.all = clients;
        self.refresh();
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
        self.view.get(row).and_then(|&index| self.all.get(index))
    }

    /// The view's row of `client_id`.
    pub fn position(&self, client_id: &str) -> Option<usize> {
        self.view
            .iter()
            .position(|&index| &*self.all[index].client_id == client_id)
    }

    /// The ids of every client the filter shows.
    pub fn matching_ids(&self) -> Vec<String> {
        self.view
            .iter()
            .map(|&index| self.all[index].client_id.to_string())
            .collect()
    }

    fn refresh(&mut self) {
        let needle = self.filter.to_lowercase();
        let mut view: Vec<usize> = (0..self.all.len())
            .filter(|&index| needle.is_empty() || matches(&self.all[index], &needle))
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
