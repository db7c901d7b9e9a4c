//! Topic names and topic filters (MQTT 3.1.1 §4.7, MQTT 5.0 §4.7, §4.8.2 for `$share`).

const SHARE_PREFIX: &str = "$share/";

/// A topic name that a PUBLISH may carry: not empty, no wildcards (MQTT-3.3.2-2, MQTT-4.7.3-1).
pub fn is_valid_topic_name(topic: &str) -> bool {
    !topic.is_empty() && !has_wildcard(topic)
}

/// Whether `topic` contains `+` or `#`. A byte scan: both are ASCII, and a `str` search for
/// a set of chars decodes every character.
pub fn has_wildcard(topic: &str) -> bool {
    topic.bytes().any(|byte| byte == b'+' || byte == b'#')
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

/// [`is_valid_topic_name`], and at most `max_levels` levels (`limits.max_topic_levels`).
/// A name over the limit is treated as malformed: 0x90 Topic Name Invalid in v5.
/// Checked in one pass over the bytes: every PUBLISH pays for it.
pub fn is_valid_topic_name_within(topic: &str, max_levels: u32) -> bool {
    if topic.is_empty() || max_levels == 0 {
        return false;
    }
    // The levels are separated by `/` (MQTT 5.0 §4.7.1.1): one more level than separators.
    let mut separators = 0u32;
    for &byte in topic.as_bytes() {
        match byte {
            b'+' | b'#' => return false,
            b'/' => {
                separators += 1;
                if separators >= max_levels {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// [`is_valid_topic_filter`], and at most `max_levels` levels (`limits.max_topic_levels`)
/// after any `$share/{group}/` prefix, which is not part of the filter (MQTT 5.0 §4.8.2).
/// A filter over the limit gets 0x8F Topic Filter Invalid (v5) / 0x80 Failure (3.1.1).
pub fn is_valid_topic_filter_within(filter: &str, max_levels: u32) -> bool {
    let plain = parse_shared(filter).map_or(filter, |shared| shared.filter);
    is_valid_topic_filter(filter) && within_levels(plain, max_levels)
}

/// Whether `topic` has at most `max_levels` levels. The levels are separated by `/`
/// (MQTT 5.0 §4.7.1.1), so there is one more level than separators; counted without
/// allocating and without looking past the limit.
pub fn within_levels(topic: &str, max_levels: u32) -> bool {
    let Some(max_separators) = max_levels.checked_sub(1) else {
        return false;
    };
    let max_separators = usize::try_from(max_separators).unwrap_or(usize::MAX);
    topic
        .bytes()
        .filter(|&byte| byte == b'/')
        .nth(max_separators)
        .is_none()
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
    fn level_limit() {
        assert!(within_levels("a", 1));
        assert!(!within_levels("a/b", 1));
        assert!(within_levels("a/b", 2));
        assert!(within_levels("/", 2));
        assert!(!within_levels("//", 2));
        assert!(!within_levels("a", 0));
        let deep = "/".repeat(60_000);
        assert!(!within_levels(&deep, 200));
        assert!(within_levels(&deep, 60_001));
        assert!(!within_levels(&deep, 60_000));
        // 200 levels pass the default limit, 201 do not.
        let at_limit = vec!["x"; 200].join("/");
        assert!(is_valid_topic_name_within(&at_limit, 200));
        assert!(!is_valid_topic_name_within(&format!("{at_limit}/x"), 200));
        assert!(is_valid_topic_filter_within(&at_limit, 200));
        assert!(!is_valid_topic_filter_within(&format!("{at_limit}/#"), 200));
        // The `$share/{group}/` prefix does not count towards the limit.
        assert!(is_valid_topic_filter_within(
            &format!("$share/g/{at_limit}"),
            200
        ));
        assert!(!is_valid_topic_filter_within(&deep, 200));
        assert!(!is_valid_topic_name_within(&deep, 200));
        // Still checks validity first.
        assert!(!is_valid_topic_filter_within("a/b#", 200));
        assert!(!is_valid_topic_name_within("a/+", 200));
    }

    proptest::proptest! {
        /// The one-pass check agrees with its definition: a valid name within the levels.
        #[test]
        fn one_pass_name_check_agrees(topic in "[a/+#$ ]{0,12}", max_levels in 0u32..6) {
            proptest::prop_assert_eq!(
                is_valid_topic_name_within(&topic, max_levels),
                is_valid_topic_name(&topic) && within_levels(&topic, max_levels)
            );
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
