//! Topic aliases (MQTT 5.0 §3.3.2.3.4), one table per direction and per network connection:
//! those the client set on its PUBLISHes ([`InboundAliases`]) and those the writer assigns to
//! the topics it sends ([`OutboundAliases`]). Both start empty on every connection
//! (MQTT-3.3.2-7) and are allocated only once an alias is used.

use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};

use crate::mqtt::{Publish, ReasonCode};

/// Aliases the client has set: alias -> topic, at most our Topic Alias Maximum.
#[derive(Debug, Default)]
pub(super) struct InboundAliases {
    topics: Option<Box<HashMap<u16, Arc<str>>>>,
}

impl InboundAliases {
    /// Replaces an alias-only topic with the topic it stands for, or records a new mapping.
    /// `maximum` is the Topic Alias Maximum we announced.
    pub(super) fn resolve(
        &mut self,
        publish: &mut Publish,
        maximum: u16,
    ) -> Result<(), ReasonCode> {
        let Some(alias) = publish.properties.topic_alias.take() else {
            return Ok(());
        };
        // 0 or above our Topic Alias Maximum (MQTT-3.3.2-8, MQTT-3.3.2-9).
        if alias == 0 || alias > maximum {
            return Err(ReasonCode::TopicAliasInvalid);
        }
        if publish.topic.is_empty() {
            // An alias the client never set (MQTT 5.0 §3.3.2.3.4: a protocol error).
            match self.topics.as_ref().and_then(|topics| topics.get(&alias)) {
                Some(topic) => publish.topic = topic.clone(),
                None => return Err(ReasonCode::ProtocolError),
            }
        } else {
            self.topics
                .get_or_insert_with(|| Box::new(HashMap::new()))
                .insert(alias, publish.topic.clone());
        }
        Ok(())
    }
}

/// How the writer sends one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OutboundAlias {
    /// The alias to put in the PUBLISH, if any.
    pub(super) alias: Option<u16>,
    /// The topic is known to the client by its alias: send an empty topic name.
    pub(super) omit_topic: bool,
    /// A new alias: [`OutboundAliases::confirm`] it once the PUBLISH is encoded.
    pub(super) new: bool,
}

/// Aliases the writer has given topics, at most the client's Topic Alias Maximum: the topic
/// is sent once with a new alias, then only the alias.
#[derive(Debug)]
pub(super) struct OutboundAliases {
    /// The client's Topic Alias Maximum (0: no aliases, MQTT-3.3.2-12 seen from the server).
    maximum: u16,
    aliases: Option<Box<HashMap<Arc<str>, u16>>>,
}

impl OutboundAliases {
    pub(super) fn new(maximum: u16) -> Self {
        OutboundAliases {
            maximum,
            aliases: None,
        }
    }

    fn len(&self) -> usize {
        self.aliases.as_ref().map_or(0, |aliases| aliases.len())
    }

    /// How to send `topic` now.
    pub(super) fn lookup(&self, topic: &Arc<str>) -> OutboundAlias {
        if self.maximum == 0 {
            return OutboundAlias {
                alias: None,
                omit_topic: false,
                new: false,
            };
        }
        match self.aliases.as_ref().and_then(|aliases| aliases.get(topic)) {
            Some(alias) => OutboundAlias {
                alias: Some(*alias),
                omit_topic: true,
                new: false,
            },
            None if self.len() < usize::from(self.maximum) => OutboundAlias {
                // Bounded by `maximum`, a u16.
                alias: Some(self.len() as u16 + 1),
                omit_topic: false,
                new: true,
            },
            None => OutboundAlias {
                alias: None,
                omit_topic: false,
                new: false,
            },
        }
    }

    /// Records a new alias once the PUBLISH carrying it has been encoded.
    pub(super) fn confirm(&mut self, topic: &Arc<str>, chosen: OutboundAlias) {
        if let (true, Some(alias)) = (chosen.new, chosen.alias) {
            self.aliases
                .get_or_insert_with(|| Box::new(HashMap::new()))
                .insert(topic.clone(), alias);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::mqtt::{Properties, QoS};

    fn publish(topic: &str, alias: Option<u16>) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: Arc::from(topic),
            packet_id: None,
            properties: Properties {
                topic_alias: alias,
                ..Properties::default()
            },
            payload: Bytes::new(),
        }
    }

    #[test]
    fn an_inbound_alias_set_once_stands_for_its_topic() {
        let mut aliases = InboundAliases::default();
        let mut first = publish("a/b", Some(3));
        assert_eq!(aliases.resolve(&mut first, 10), Ok(()));
        let mut second = publish("", Some(3));
        assert_eq!(aliases.resolve(&mut second, 10), Ok(()));
        assert_eq!(&*second.topic, "a/b");
        assert_eq!(second.properties.topic_alias, None);
    }

    #[test]
    fn inbound_alias_0_or_over_the_maximum_is_invalid_mqtt_3_3_2_8_and_9() {
        let mut aliases = InboundAliases::default();
        assert_eq!(
            aliases.resolve(&mut publish("a", Some(0)), 10),
            Err(ReasonCode::TopicAliasInvalid)
        );
        assert_eq!(
            aliases.resolve(&mut publish("a", Some(11)), 10),
            Err(ReasonCode::TopicAliasInvalid)
        );
        assert_eq!(
            aliases.resolve(&mut publish("", Some(5)), 10),
            Err(ReasonCode::ProtocolError),
            "an alias never set"
        );
    }

    #[test]
    fn outbound_aliases_are_assigned_up_to_the_clients_maximum() {
        let mut aliases = OutboundAliases::new(1);
        let a: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("b");
        let first = aliases.lookup(&a);
        assert_eq!(
            (first.alias, first.omit_topic, first.new),
            (Some(1), false, true)
        );
        aliases.confirm(&a, first);
        let again = aliases.lookup(&a);
        assert_eq!(
            (again.alias, again.omit_topic, again.new),
            (Some(1), true, false)
        );
        let other = aliases.lookup(&b);
        assert_eq!((other.alias, other.omit_topic), (None, false), "table full");
        let none = OutboundAliases::new(0).lookup(&a);
        assert_eq!(none.alias, None);
    }
}
