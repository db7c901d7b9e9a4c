//! The subscription index: a tree of topic levels with `+` and `#` children, ordinary
//! subscribers and shared subscription groups (`$share/{group}/{filter}`) at each node.

use foldhash::HashMap;
use std::sync::Arc;

/// The router's numeric name for a session (cheaper to compare and hash than client ids).
pub type SessionKey = u64;

pub use crate::model::Subscription;

/// A subscriber that a topic matched.
#[derive(Debug, Clone)]
pub struct Match {
    pub session: SessionKey,
    pub subscription: Subscription,
    /// The `$share/{group}/{filter}` this match came through, for shared subscriptions.
    pub share: Option<Arc<str>>,
}

#[derive(Debug, Default)]
struct SharedGroup {
    /// The whole `$share/{group}/{filter}` string, tagged on deliveries.
    name: Arc<str>,
    members: Vec<(SessionKey, Subscription)>,
    /// Round-robin position.
    next: usize,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    subscribers: HashMap<SessionKey, Subscription>,
    shared: HashMap<Box<str>, SharedGroup>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subscribers.is_empty() && self.shared.is_empty()
    }
}

/// Where a filter is registered: an ordinary filter, or a shared one in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterRef<'a> {
    pub filter: &'a str,
    pub group: Option<&'a str>,
}

impl<'a> FilterRef<'a> {
    /// Splits `$share/{group}/{filter}`; anything else is an ordinary filter.
    pub fn parse(full: &'a str) -> FilterRef<'a> {
        if let Some(rest) = full.strip_prefix("$share/")
            && let Some((group, filter)) = rest.split_once('/')
        {
            return FilterRef {
                filter,
                group: Some(group),
            };
        }
        FilterRef {
            filter: full,
            group: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct SubscriptionTree {
    root: Node,
    count: usize,
}

impl SubscriptionTree {
    /// Number of subscriptions (ordinary and shared).
    pub fn len(&self) -> usize {
        self.count
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds or replaces one session's subscription to `full_filter`; returns true when it
    /// replaced an existing one (MQTT-3.8.4-3: a subscription is replaced, never doubled).
    pub fn insert(
        &mut self,
        full_filter: &str,
        session: SessionKey,
        subscription: Subscription,
    ) -> bool {
        let filter = FilterRef::parse(full_filter);
        let mut node = &mut self.root;
        for level in filter.filter.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let existed = match filter.group {
            None => node.subscribers.insert(session, subscription).is_some(),
            Some(group) => {
                let shared = node
                    .shared
                    .entry(group.into())
                    .or_insert_with(|| SharedGroup {
                        name: Arc::from(full_filter),
                        ..SharedGroup::default()
                    });
                match shared.members.iter_mut().find(|(key, _)| *key == session) {
                    Some(member) => {
                        member.1 = subscription;
                        true
                    }
                    None => {
                        shared.members.push((session, subscription));
                        false
                    }
                }
            }
        };
        if !existed {
            self.count += 1;
        }
        existed
    }

    /// Removes one session's subscription; returns false when there was none.
    pub fn remove(&mut self, full_filter: &str, session: SessionKey) -> bool {
        let filter = FilterRef::parse(full_filter);
        let levels: Vec<&str> = filter.filter.split('/').collect();
        let removed = remove_at(&mut self.root, &levels, filter.group, session);
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// Every subscription matching `topic`, appended to `out`. Shared groups contribute one
    /// member, chosen round-robin among those for which `is_connected` holds (any member
    /// when none is connected, so that its session queues the message).
    pub fn matches(
        &mut self,
        topic: &str,
        is_connected: impl Fn(SessionKey) -> bool,
        out: &mut Vec<Match>,
    ) {
        // Split on the stack for usual topics: this runs for every message routed.
        let mut stack = [""; STACK_LEVELS];
        let mut count = 0;
        for level in topic.split('/') {
            if count == STACK_LEVELS {
                let levels: Vec<&str> = topic.split('/').collect();
                collect(&mut self.root, &levels, true, &is_connected, out);
                return;
            }
            stack[count] = level;
            count += 1;
        }
        collect(&mut self.root, &stack[..count], true, &is_connected, out);
    }

    /// Another member of the shared group `share` than `except`, connected, round-robin.
    pub fn pick_other_member(
        &mut self,
        share: &str,
        except: SessionKey,
        is_connected: impl Fn(SessionKey) -> bool,
    ) -> Option<(SessionKey, Subscription)> {
        let filter = FilterRef::parse(share);
        let group = filter.group?;
        let mut node = &mut self.root;
        for level in filter.filter.split('/') {
            node = node.children.get_mut(level)?;
        }
        let shared = node.shared.get_mut(group)?;
        pick_member(shared, |key| key != except && is_connected(key))
    }
}

/// Topics with up to this many levels are matched without allocating.
const STACK_LEVELS: usize = 16;

fn remove_at(node: &mut Node, levels: &[&str], group: Option<&str>, session: SessionKey) -> bool {
    let Some((first, rest)) = levels.split_first() else {
        return match group {
            None => node.subscribers.remove(&session).is_some(),
            Some(group) => {
                let Some(shared) = node.shared.get_mut(group) else {
                    return false;
                };
                let before = shared.members.len();
                shared.members.retain(|(key, _)| *key != session);
                let removed = shared.members.len() != before;
                if shared.members.is_empty() {
                    node.shared.remove(group);
                }
                removed
            }
        };
    };
    let Some(child) = node.children.get_mut(*first) else {
        return false;
    };
    let removed = remove_at(child, rest, group, session);
    if child.is_empty() {
        node.children.remove(*first);
    }
    removed
}

fn pick_member(
    shared: &mut SharedGroup,
    eligible: impl Fn(SessionKey) -> bool,
) -> Option<(SessionKey, Subscription)> {
    let len = shared.members.len();
    for step in 0..len {
        let index = (shared.next + step) % len;
        let (key, subscription) = shared.members[index];
        if eligible(key) {
            shared.next = (index + 1) % len;
            return Some((key, subscription));
        }
    }
    None
}

fn collect_node(node: &mut Node, is_connected: &impl Fn(SessionKey) -> bool, out: &mut Vec<Match>) {
    for (key, subscription) in &node.subscribers {
        out.push(Match {
            session: *key,
            subscription: *subscription,
            share: None,
        });
    }
    for shared in node.shared.values_mut() {
        let chosen = pick_member(shared, is_connected).or_else(|| pick_member(shared, |_| true));
        if let Some((key, subscription)) = chosen {
            out.push(Match {
                session: key,
                subscription,
                share: Some(shared.name.clone()),
            });
        }
    }
}

fn collect(
    node: &mut Node,
    levels: &[&str],
    first_level: bool,
    is_connected: &impl Fn(SessionKey) -> bool,
    out: &mut Vec<Match>,
) {
    let Some((level, rest)) = levels.split_first() else {
        collect_node(node, is_connected, out);
        // "sport/#" also matches "sport" (MQTT 3.1.1 §4.7.1.2).
        if let Some(hash) = node.children.get_mut("#") {
            collect_node(hash, is_connected, out);
        }
        return;
    };
    // Wildcards at the first level do not match topics starting with `$` (MQTT-4.7.2-1).
    let wildcards_apply = !(first_level && level.starts_with('$'));
    if wildcards_apply {
        if let Some(hash) = node.children.get_mut("#") {
            collect_node(hash, is_connected, out);
        }
        if let Some(plus) = node.children.get_mut("+") {
            collect(plus, rest, false, is_connected, out);
        }
    }
    if *level != "+"
        && *level != "#"
        && let Some(child) = node.children.get_mut(*level)
    {
        collect(child, rest, false, is_connected, out);
    }
}

/// Whether the ordinary filter `filter` matches `topic` (used for retained messages).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false; // MQTT-4.7.2-1
    }
    let mut topic_levels = topic.split('/');
    for filter_level in filter.split('/') {
        match filter_level {
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            exact => {
                if topic_levels.next() != Some(exact) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{QoS, SubscriptionOptions};

    fn sub(qos: QoS) -> Subscription {
        Subscription {
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
            identifier: None,
        }
    }

    fn matched(tree: &mut SubscriptionTree, topic: &str) -> Vec<SessionKey> {
        let mut out = Vec::new();
        tree.matches(topic, |_| true, &mut out);
        let mut keys: Vec<_> = out.iter().map(|m| m.session).collect();
        keys.sort();
        keys
    }

    #[test]
    fn wildcards_match_levels() {
        let mut tree = SubscriptionTree::default();
        tree.insert("a/+/c", 1, sub(QoS::AtMostOnce));
        tree.insert("a/#", 2, sub(QoS::AtMostOnce));
        tree.insert("#", 3, sub(QoS::AtMostOnce));
        tree.insert("a/b", 4, sub(QoS::AtMostOnce));
        tree.insert("+/+", 5, sub(QoS::AtMostOnce));
        assert_eq!(matched(&mut tree, "a/b/c"), vec![1, 2, 3]);
        assert_eq!(matched(&mut tree, "a/b"), vec![2, 3, 4, 5]);
        assert_eq!(matched(&mut tree, "a"), vec![2, 3]);
        assert_eq!(matched(&mut tree, "b/x/c"), vec![3]);
    }

    #[test]
    fn topics_longer_than_the_stack_split_match_the_same_way() {
        for levels in [
            STACK_LEVELS - 1,
            STACK_LEVELS,
            STACK_LEVELS + 1,
            3 * STACK_LEVELS,
        ] {
            let topic = vec!["x"; levels].join("/");
            let mut tree = SubscriptionTree::default();
            tree.insert(&topic, 1, sub(QoS::AtMostOnce));
            tree.insert(&format!("{topic}/#"), 2, sub(QoS::AtMostOnce));
            tree.insert(
                &format!("+/{}", vec!["x"; levels - 1].join("/")),
                3,
                sub(QoS::AtMostOnce),
            );
            tree.insert(&format!("{topic}/x"), 4, sub(QoS::AtMostOnce));
            assert_eq!(matched(&mut tree, &topic), vec![1, 2, 3], "{levels} levels");
        }
    }

    #[test]
    fn dollar_topics_skip_first_level_wildcards() {
        // MQTT-4.7.2-1
        let mut tree = SubscriptionTree::default();
        tree.insert("#", 1, sub(QoS::AtMostOnce));
        tree.insert("+/broker", 2, sub(QoS::AtMostOnce));
        tree.insert("$SYS/#", 3, sub(QoS::AtMostOnce));
        tree.insert("$SYS/+", 4, sub(QoS::AtMostOnce));
        assert_eq!(matched(&mut tree, "$SYS/broker"), vec![3, 4]);
    }

    #[test]
    fn replace_and_remove() {
        let mut tree = SubscriptionTree::default();
        assert!(!tree.insert("a/b", 1, sub(QoS::AtMostOnce)));
        assert!(tree.insert("a/b", 1, sub(QoS::ExactlyOnce)));
        assert_eq!(tree.len(), 1);
        let mut out = Vec::new();
        tree.matches("a/b", |_| true, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].subscription.options.qos, QoS::ExactlyOnce);
        assert!(tree.remove("a/b", 1));
        assert!(!tree.remove("a/b", 1));
        assert!(tree.is_empty());
        assert!(tree.root.is_empty());
    }

    #[test]
    fn shared_groups_round_robin_among_connected() {
        let mut tree = SubscriptionTree::default();
        tree.insert("$share/g/a/+", 1, sub(QoS::AtLeastOnce));
        tree.insert("$share/g/a/+", 2, sub(QoS::AtLeastOnce));
        tree.insert("$share/g/a/+", 3, sub(QoS::AtLeastOnce));
        let mut picks = Vec::new();
        for _ in 0..4 {
            let mut out = Vec::new();
            tree.matches("a/x", |key| key != 2, &mut out);
            assert_eq!(out.len(), 1);
            assert_eq!(&*out[0].share.clone().unwrap(), "$share/g/a/+");
            picks.push(out[0].session);
        }
        assert_eq!(picks, vec![1, 3, 1, 3]);
        assert_eq!(
            tree.pick_other_member("$share/g/a/+", 1, |_| true)
                .map(|m| m.0),
            Some(2)
        );
        assert!(tree.remove("$share/g/a/+", 1));
        assert_eq!(tree.len(), 2);
    }

    #[test]
    fn filter_matching_for_retained() {
        assert!(filter_matches("a/+/c", "a/b/c"));
        assert!(filter_matches("a/#", "a"));
        assert!(filter_matches("#", "a/b"));
        assert!(!filter_matches("#", "$SYS/x"));
        assert!(filter_matches("$SYS/#", "$SYS/x"));
        assert!(!filter_matches("a/+", "a/b/c"));
        assert!(!filter_matches("a/b", "a"));
        assert!(filter_matches("+/+", "/x"));
    }
}
