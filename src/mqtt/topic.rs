//! Topic names and topic filters (MQTT 3.1.1 §4.7, MQTT 5.0 §4.7, §4.8.2 for `$share`).
//! (Contract only: the implementation lands with the codec work.)

/// A topic name that a PUBLISH may carry: not empty, no wildcards (MQTT-3.3.2-2, MQTT-4.7.3-1).
pub fn is_valid_topic_name(topic: &str) -> bool {
    let _ = topic;
    unimplemented!("codec")
}

/// A topic filter a SUBSCRIBE may carry: not empty, `#` alone and last, `+` alone in its level
/// (MQTT-4.7.1-1, MQTT-4.7.1-2, MQTT-4.7.3-1), and a well-formed `$share/{group}/{filter}`.
pub fn is_valid_topic_filter(filter: &str) -> bool {
    let _ = filter;
    unimplemented!("codec")
}

/// A shared subscription `$share/{group}/{filter}` split into group and filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    pub group: &'a str,
    pub filter: &'a str,
}

/// Splits `$share/{group}/{filter}`; `None` for an ordinary filter.
pub fn parse_shared(filter: &str) -> Option<SharedFilter<'_>> {
    let _ = filter;
    unimplemented!("codec")
}
