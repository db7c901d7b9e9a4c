//! Topic permissions: which topics a client may publish to (write) and receive from (read).
//!
//! The rules are those of Mosquitto's `acl_file`, which roost reads ([`parse_acl_file`]):
//! - rules before any `user` line are for anonymous clients (no username);
//! - `user NAME` starts the rules of one user;
//! - `topic [read|write|readwrite|deny] FILTER` (readwrite when the access is left out);
//! - `pattern [read|write|readwrite|deny] FILTER` applies to every client, wherever it stands
//!   in the file, with `%u` replaced by the username and `%c` by the client identifier. A
//!   pattern naming `%u` does not apply to anonymous clients.
//!
//! How a client's rules decide, as Mosquitto does: a topic matched by a `deny` rule is
//! refused whatever else matches; otherwise it is allowed when a rule granting the access
//! matches it, and refused when none does. With no rules at all in the configuration,
//! everything is allowed (the broker skips every check). A client whose username or client
//! identifier contains `+` or `#` is refused everything when patterns exist, so that it cannot
//! widen a pattern into a wildcard.
//!
//! A SUBSCRIBE filter is judged against the rules as a whole ([`ClientAcl::subscription`]):
//! refused when the client may never read a topic it matches, unrestricted when it may read
//! every one, restricted otherwise (each message is then checked at delivery).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::broker::filter_matches;
use crate::mqtt::topic;

/// The topic permissions of the configuration (`acl` in the RON file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TopicPermissions {
    /// Rules for clients that connect without a username.
    pub anonymous: Vec<TopicRule>,
    /// Rules per username (whether the user has a password entry or not).
    pub users: BTreeMap<String, Vec<TopicRule>>,
    /// Rules for every client, with `%u` (username) and `%c` (client identifier) substituted.
    pub patterns: Vec<TopicRule>,
}

impl TopicPermissions {
    /// No rules anywhere: everything is allowed and the broker checks nothing.
    pub fn is_empty(&self) -> bool {
        self.anonymous.is_empty()
            && self.patterns.is_empty()
            && self.users.values().all(|rules| rules.is_empty())
    }

    /// Every rule's filter must be a valid topic filter; the error names the rule.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let check = |field: String, rule: &TopicRule| {
            if topic::is_valid_topic_filter(&rule.topic) {
                Ok(())
            } else {
                Err((
                    field,
                    format!("{:?} is not a valid topic filter", rule.topic),
                ))
            }
        };
        for (index, rule) in self.anonymous.iter().enumerate() {
            check(format!("acl.anonymous[{index}].topic"), rule)?;
        }
        for (name, rules) in &self.users {
            if name.is_empty() {
                return Err(("acl.users".into(), "a username is empty".into()));
            }
            for (index, rule) in rules.iter().enumerate() {
                check(format!("acl.users[{name:?}][{index}].topic"), rule)?;
            }
        }
        for (index, rule) in self.patterns.iter().enumerate() {
            check(format!("acl.patterns[{index}].topic"), rule)?;
        }
        Ok(())
    }

    /// The rules one client is held to, with patterns substituted; `None` when there are no
    /// rules at all, so that the broker can skip every check.
    pub fn for_client(&self, username: Option<&str>, client_id: &str) -> Option<Arc<ClientAcl>> {
        if self.is_empty() {
            return None;
        }
        let mut acl = ClientAcl::default();
        let own = match username {
            Some(name) => self.users.get(name).map(Vec::as_slice).unwrap_or_default(),
            None => &self.anonymous,
        };
        for rule in own {
            acl.add(rule.access, rule.topic.clone());
        }
        if !self.patterns.is_empty() {
            let widens = |value: &str| value.contains(['+', '#']);
            if username.is_some_and(widens) || widens(client_id) {
                acl.refuse_everything = true;
            }
            for rule in &self.patterns {
                if username.is_none() && rule.topic.contains("%u") {
                    continue;
                }
                let mut filter = rule.topic.replace("%c", client_id);
                if let Some(name) = username {
                    filter = filter.replace("%u", name);
                }
                acl.add(rule.access, filter);
            }
        }
        Some(Arc::new(acl))
    }
}

/// One rule: an access granted (or denied) on a topic filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicRule {
    pub access: Access,
    pub topic: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
    /// Neither: wins over every other rule that matches.
    Deny,
}

impl Access {
    /// The keyword of Mosquitto's `acl_file`.
    pub fn keyword(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "readwrite",
            Access::Deny => "deny",
        }
    }

    pub fn from_keyword(word: &str) -> Option<Access> {
        [Access::Read, Access::Write, Access::ReadWrite, Access::Deny]
            .into_iter()
            .find(|access| access.keyword() == word)
    }
}

/// The rules one connected client is held to, substituted and split by access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAcl {
    deny: Vec<String>,
    read: Vec<String>,
    write: Vec<String>,
    /// The client's username or client identifier would widen a pattern (see the module doc).
    refuse_everything: bool,
}

/// What a SUBSCRIBE filter gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionVerdict {
    /// The client may never read a topic the filter matches: refused in SUBACK.
    Refused,
    /// Every topic the filter matches may be read: no check at delivery.
    Unrestricted,
    /// Some may be read, some not: each message is checked at delivery.
    Restricted,
}

impl ClientAcl {
    fn add(&mut self, access: Access, filter: String) {
        match access {
            Access::Read => self.read.push(filter),
            Access::Write => self.write.push(filter),
            Access::ReadWrite => {
                self.read.push(filter.clone());
                self.write.push(filter);
            }
            Access::Deny => self.deny.push(filter),
        }
    }

    fn allows(&self, granted: &[String], topic: &str) -> bool {
        !self.refuse_everything
            && !self.deny.iter().any(|filter| filter_matches(filter, topic))
            && granted.iter().any(|filter| filter_matches(filter, topic))
    }

    /// Whether the client may receive a message published to `topic`.
    pub fn may_read(&self, topic: &str) -> bool {
        self.allows(&self.read, topic)
    }

    /// Whether the client may publish to `topic` (its PUBLISHes and its will).
    pub fn may_write(&self, topic: &str) -> bool {
        self.allows(&self.write, topic)
    }

    /// Judges a SUBSCRIBE filter (the filter itself, without `$share/{group}/`).
    pub fn subscription(&self, filter: &str) -> SubscriptionVerdict {
        if self.refuse_everything
            || self.deny.iter().any(|deny| covers(deny, filter))
            || !self.read.iter().any(|read| overlaps(read, filter))
        {
            return SubscriptionVerdict::Refused;
        }
        if self.read.iter().any(|read| covers(read, filter))
            && !self.deny.iter().any(|deny| overlaps(deny, filter))
        {
            SubscriptionVerdict::Unrestricted
        } else {
            SubscriptionVerdict::Restricted
        }
    }
}

fn is_wildcard(level: &str) -> bool {
    level == "+" || level == "#"
}

/// Whether every topic `filter` matches is matched by `rule` too. Topics starting with `$`
/// are not matched by a wildcard in the first level (MQTT-4.7.2-1), on either side.
pub fn covers(rule: &str, filter: &str) -> bool {
    let mut rule_levels = rule.split('/');
    let mut filter_levels = filter.split('/');
    let mut first = true;
    loop {
        match (rule_levels.next(), filter_levels.next()) {
            (Some("#"), Some(level)) => {
                return !(first && level.starts_with('$'));
            }
            // The filter ended; `a/#` also matches the parent `a` (MQTT 4.7.1.2).
            (Some("#"), None) => return true,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(level)) => {
                if first && level.starts_with('$') {
                    return false;
                }
            }
            (Some(exact), Some(level)) => {
                if exact != level {
                    return false;
                }
            }
            (None, None) => return true,
            (Some(_), None) | (None, Some(_)) => return false,
        }
        first = false;
    }
}

/// Whether at least one topic is matched by both filters.
pub fn overlaps(a: &str, b: &str) -> bool {
    let mut a_levels = a.split('/');
    let mut b_levels = b.split('/');
    let mut first = true;
    loop {
        match (a_levels.next(), b_levels.next()) {
            (Some(x), Some(y)) => {
                // A `$` level is matched only by the same literal level, never a wildcard.
                if first
                    && (x.starts_with('$') && is_wildcard(y)
                        || y.starts_with('$') && is_wildcard(x))
                {
                    return false;
                }
                if x == "#" || y == "#" {
                    return true;
                }
                if x != "+" && y != "+" && x != y {
                    return false;
                }
            }
            (None, None) => return true,
            // One filter ended: the other still matches its topic when it goes on with `#`.
            (Some(rest), None) | (None, Some(rest)) => {
                return rest == "#" && a_levels.next().is_none() && b_levels.next().is_none();
            }
        }
        first = false;
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AclFileError {
    #[error("line {line}: `{keyword}` needs a topic filter")]
    MissingTopic { line: usize, keyword: String },
    #[error("line {line}: `user` needs a username")]
    MissingUsername { line: usize },
    #[error("line {line}: {filter:?} is not a valid topic filter")]
    InvalidFilter { line: usize, filter: String },
    #[error("line {line}: unknown keyword `{keyword}` (expected user, topic or pattern)")]
    UnknownKeyword { line: usize, keyword: String },
}

/// Reads Mosquitto's `acl_file` format (see the module doc). The first bad line is the
/// error, so nothing half-read is used.
pub fn parse_acl_file(text: &str) -> Result<TopicPermissions, AclFileError> {
    let mut permissions = TopicPermissions::default();
    let mut current_user: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (keyword, rest) = match trimmed.split_once(char::is_whitespace) {
            Some((keyword, rest)) => (keyword, rest.trim()),
            None => (trimmed, ""),
        };
        match keyword {
            "user" => {
                if rest.is_empty() {
                    return Err(AclFileError::MissingUsername { line });
                }
                permissions.users.entry(rest.to_string()).or_default();
                current_user = Some(rest.to_string());
            }
            "topic" | "pattern" => {
                let (access, filter) = match rest.split_once(char::is_whitespace) {
                    Some((word, filter)) if Access::from_keyword(word).is_some() => (
                        Access::from_keyword(word).unwrap_or(Access::ReadWrite),
                        filter.trim(),
                    ),
                    _ => (Access::ReadWrite, rest),
                };
                if filter.is_empty() || Access::from_keyword(filter).is_some() {
                    return Err(AclFileError::MissingTopic {
                        line,
                        keyword: keyword.to_string(),
                    });
                }
                if !topic::is_valid_topic_filter(filter) {
                    return Err(AclFileError::InvalidFilter {
                        line,
                        filter: filter.to_string(),
                    });
                }
                let rule = TopicRule {
                    access,
                    topic: filter.to_string(),
                };
                match (keyword, &current_user) {
                    ("pattern", _) => permissions.patterns.push(rule),
                    (_, Some(user)) => permissions
                        .users
                        .entry(user.clone())
                        .or_default()
                        .push(rule),
                    (_, None) => permissions.anonymous.push(rule),
                }
            }
            other => {
                return Err(AclFileError::UnknownKeyword {
                    line,
                    keyword: other.to_string(),
                });
            }
        }
    }
    Ok(permissions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_follows_the_matching_rules() {
        assert!(covers("#", "a/b"));
        assert!(covers("a/#", "a"));
        assert!(covers("a/#", "a/+/c"));
        assert!(covers("a/+", "a/b"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/+/#", "a/#"), "a/# matches a itself");
        assert!(!covers("a/b", "a/+"));
        assert!(covers("+/b", "+/b"));
        assert!(!covers("#", "$SYS/#"), "MQTT-4.7.2-1");
        assert!(!covers("+/x", "$SYS/x"));
        assert!(covers("$SYS/#", "$SYS/broker/+"));
    }

    #[test]
    fn overlaps_finds_a_common_topic() {
        assert!(overlaps("#", "a"));
        assert!(overlaps("a/+", "+/b"));
        assert!(overlaps("a/#", "a"));
        assert!(overlaps("a", "a/#"));
        assert!(!overlaps("a/b", "a/c"));
        assert!(!overlaps("a/+", "a"));
        assert!(!overlaps("#", "$SYS/x"), "MQTT-4.7.2-1");
        assert!(overlaps("$SYS/#", "$SYS/+"));
        assert!(overlaps("+", "+"));
    }

    fn rules(text: &str) -> TopicPermissions {
        parse_acl_file(text).unwrap()
    }

    #[test]
    fn the_file_sections_go_to_anonymous_users_and_patterns() {
        let acl = rules(
            "# comment\n\
             topic read public/#\n\
             user alice\n\
             topic alice/#\n\
             topic deny alice/secret\n\
             pattern write clients/%c/out\n\
             user bob\n\
             topic read bob/in\n",
        );
        assert_eq!(
            acl.anonymous,
            vec![TopicRule {
                access: Access::Read,
                topic: "public/#".into()
            }]
        );
        assert_eq!(acl.users["alice"].len(), 2);
        assert_eq!(acl.users["alice"][0].access, Access::ReadWrite);
        assert_eq!(acl.users["alice"][1].access, Access::Deny);
        assert_eq!(
            acl.users["bob"],
            vec![TopicRule {
                access: Access::Read,
                topic: "bob/in".into()
            }]
        );
        assert_eq!(
            acl.patterns,
            vec![TopicRule {
                access: Access::Write,
                topic: "clients/%c/out".into()
            }]
        );
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(
            parse_acl_file("topic read\n"),
            Err(AclFileError::MissingTopic {
                line: 1,
                keyword: "topic".into()
            })
        );
        assert_eq!(
            parse_acl_file("\nuser\n"),
            Err(AclFileError::MissingUsername { line: 2 })
        );
        assert!(matches!(
            parse_acl_file("topic read a/#/b\n"),
            Err(AclFileError::InvalidFilter { line: 1, .. })
        ));
        assert!(matches!(
            parse_acl_file("allow a\n"),
            Err(AclFileError::UnknownKeyword { line: 1, .. })
        ));
    }

    #[test]
    fn no_rules_means_no_checks() {
        assert_eq!(TopicPermissions::default().for_client(Some("a"), "c"), None);
    }

    #[test]
    fn deny_wins_and_nothing_unlisted_is_allowed() {
        let acl = rules("user alice\ntopic alice/#\ntopic deny alice/secret/#\n")
            .for_client(Some("alice"), "c1")
            .unwrap();
        assert!(acl.may_read("alice/x"));
        assert!(acl.may_write("alice/x"));
        assert!(!acl.may_read("alice/secret/y"));
        assert!(!acl.may_write("alice/secret"));
        assert!(!acl.may_read("bob/x"));
        assert_eq!(
            acl.subscription("alice/public/+"),
            SubscriptionVerdict::Unrestricted
        );
        // alice/+ matches alice/secret, which the deny rule's `#` matches too.
        assert_eq!(acl.subscription("alice/+"), SubscriptionVerdict::Restricted);
        assert_eq!(acl.subscription("alice/#"), SubscriptionVerdict::Restricted);
        assert_eq!(acl.subscription("#"), SubscriptionVerdict::Restricted);
        assert_eq!(
            acl.subscription("alice/secret/#"),
            SubscriptionVerdict::Refused
        );
        assert_eq!(acl.subscription("bob/#"), SubscriptionVerdict::Refused);
    }

    #[test]
    fn patterns_substitute_username_and_client_id() {
        let permissions = rules("pattern readwrite users/%u/#\npattern read clients/%c\n");
        let acl = permissions.for_client(Some("alice"), "dev1").unwrap();
        assert!(acl.may_write("users/alice/x"));
        assert!(!acl.may_write("users/bob/x"));
        assert!(acl.may_read("clients/dev1"));
        assert!(!acl.may_write("clients/dev1"));
        // Anonymous: the %u pattern does not apply, the %c one does.
        let anonymous = permissions.for_client(None, "dev2").unwrap();
        assert!(!anonymous.may_read("users/%u/x"));
        assert!(anonymous.may_read("clients/dev2"));
        // A wildcard in the username or client id would widen the pattern: refused.
        let sly = permissions.for_client(Some("#"), "dev3").unwrap();
        assert!(!sly.may_read("users/x/y"));
        assert!(!sly.may_read("clients/dev3"));
        let sly = permissions.for_client(Some("eve"), "+").unwrap();
        assert_eq!(sly.subscription("clients/+"), SubscriptionVerdict::Refused);
    }

    #[test]
    fn write_only_topics_cannot_be_subscribed() {
        let acl = rules("topic write sensors/#\n")
            .for_client(None, "c")
            .unwrap();
        assert!(acl.may_write("sensors/t"));
        assert!(!acl.may_read("sensors/t"));
        assert_eq!(acl.subscription("sensors/#"), SubscriptionVerdict::Refused);
    }
}
