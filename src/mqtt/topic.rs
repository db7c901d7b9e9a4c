//! Topic names and topic filters (MQTT 3.1.1 §4.7, MQTT 5.0 §4.7, §4.8.2 for `$share`).

const SHARE_PREFIX: &str = "$share/";

/// A topic name that a PUBLISH may carry: not empty, no wildcards (MQTT-3.3.2-2, MQTT-4.7.3-1).
pub fn is_valid_topic_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#'])
}

/// A topic filter a SUBSCRIBE may carry: not empty, `#` alone and last, `+` alone in its level
/// (MQTT-4.7.1-1, MQTT-4.7.1-2, MQTT-4.7.3-1), and a well-formed `$share/{group}/{filter}`.
pub fn is_valid_topic_filter(filter: &str) -> bool {
    if filter.starts_with(SHARE_PREFIX) {
        // MQTT 5.0 §4.8.2: a filter starting with `$share/` is a shared subscription and must
        // be complete; parse_shared checks the group, the inner filter is checked here.
        return parse_shared(filter).is_some_and(|shared| is_valid_plain_filter(shared.filter));
    }
    is_valid_plain_filter(filter)
}

fn is_valid_plain_filter(filter: &str) -> bool {
    // MQTT-4.7.3-1: at least one character.
    if filter.is_empty() {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        match level {
            // MQTT-4.7.1-2: `#` is the last character, alone in its level.
            "#" => return levels.peek().is_none(),
            // MQTT-4.7.1-3 (3.1.1) / §4.7.1.2: `+` occupies an entire level.
            "+" => {}
            _ if level.contains(['+', '#']) => return false,
            _ => {}
        }
    }
    true
}

/// A shared subscription `$share/{group}/{filter}` split into group and filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    pub group: &'a str,
    pub filter: &'a str,
}

/// Splits `$share/{group}/{filter}`; `None` for an ordinary filter (and for a `$share/`
/// filter that lacks a valid group or a filter, which [`is_valid_topic_filter`] refuses).
pub fn parse_shared(filter: &str) -> Option<SharedFilter<'_>> {
    let rest = filter.strip_prefix(SHARE_PREFIX)?;
    let (group, filter) = rest.split_once('/')?;
    // MQTT 5.0 §4.8.2: the ShareName is at least one character and has no `/`, `+` or `#`
    // (MQTT-4.8.2-1, MQTT-4.8.2-2); it is followed by a topic filter.
    if group.is_empty() || group.contains(['+', '#']) || filter.is_empty() {
        return None;
    }
    Some(SharedFilter { group, filter })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        // MQTT-4.7.3-1, MQTT-3.3.2-2.
        for name in ["a", "a/b", "/", "a//b", "$SYS/x", "\u{FEFF}x", " "] {
            assert!(is_valid_topic_name(name), "{name:?}");
        }
        for name in ["", "+", "#", "a/+", "a/#", "a+b"] {
            assert!(!is_valid_topic_name(name), "{name:?}");
        }
    }

    #[test]
    fn topic_filters() {
        // Examples from MQTT 3.1.1 §4.7.1.2 / §4.7.1.3.
        for filter in [
            "#",
            "+",
            "+/tennis/#",
            "sport/#",
            "sport/tennis/+",
            "/+",
            "+/+",
            "a//b",
            "/",
            "$SYS/#",
        ] {
            assert!(is_valid_topic_filter(filter), "{filter:?}");
        }
        // "sport/tennis#" and "sport/tennis/#/ranking" (MQTT-4.7.1-2), "sport+" (MQTT-4.7.1-3).
        for filter in [
            "",
            "sport/tennis#",
            "sport/tennis/#/ranking",
            "sport+",
            "a/b+/c",
            "##",
        ] {
            assert!(!is_valid_topic_filter(filter), "{filter:?}");
        }
    }

    #[test]
    fn shared_filters() {
        assert_eq!(
            parse_shared("$share/group/a/+/#"),
            Some(SharedFilter {
                group: "group",
                filter: "a/+/#"
            })
        );
        assert_eq!(parse_shared("a/b"), None);
        assert_eq!(parse_shared("$sharex/g/a"), None);
        assert!(is_valid_topic_filter("$share/g/#"));
        assert!(is_valid_topic_filter("$share/g//"));
        // MQTT 5.0 §4.8.2: group present, without wildcards, and a filter follows.
        for filter in [
            "$share/",
            "$share//a",
            "$share/g",
            "$share/g/",
            "$share/g+/a",
            "$share/#/a",
            "$share/g/a#",
        ] {
            assert!(!is_valid_topic_filter(filter), "{filter:?}");
        }
        // "$share" alone and "$shared/.." are ordinary filters.
        assert!(is_valid_topic_filter("$share"));
        assert!(is_valid_topic_filter("$shared/x"));
    }
}
