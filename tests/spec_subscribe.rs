//! Conformance audit: topic matching, SUBSCRIBE / SUBACK, UNSUBSCRIBE / UNSUBACK and shared
//! subscriptions (MQTT 3.1.1 §3.8–3.11, §4.7; MQTT 5.0 §3.8–3.11, §4.7, §4.8.2).

#[path = "common/audit.rs"]
mod audit;
mod common;

use audit::*;
use common::*;
use roost::mqtt::{Packet, ProtocolVersion, QoS, ReasonCode};

#[tokio::test]
async fn wildcards_match_empty_levels_parents_and_case_exactly() {
    // MQTT 5.0 §4.7.1.2–§4.7.1.3 and §4.7.3 (MQTT-4.7.3-4: no normalisation, topics are
    // case sensitive). Each filter carries its own Subscription Identifier, so the
    // identifiers of one delivery tell which filters matched (MQTT-3.3.4-4).
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "match-sub").await;
    let filters = [
        "a/+/b",          // 1
        "sport/#",        // 2
        "+/+",            // 3
        "/+",             // 4
        "+",              // 5
        "sport/tennis/+", // 6
        "#",              // 7
        "Sport/#",        // 8
        "sport/+",        // 9
        "caf\u{e9}",      // 10
    ];
    for (i, f) in filters.iter().enumerate() {
        let id = i as u32 + 1;
        let suback = subscribe_many(
            &mut sub,
            id as u16,
            vec![filter(f, QoS::AtMostOnce)],
            Some(id),
        )
        .await;
        assert_eq!(suback.reasons, vec![ReasonCode::Success], "{f}");
    }
    let cases: [(&str, &[u32]); 11] = [
        ("a//b", &[1, 7]),
        // "+" and "#" below the first level do match a "$" level (MQTT-4.7.2-1 is about the
        // first level only).
        ("sport/$x", &[2, 3, 7, 9]),
        // No Unicode normalisation: precomposed and decomposed forms are different topics.
        ("caf\u{e9}", &[5, 7, 10]),
        ("cafe\u{301}", &[5, 7]),
        ("sport", &[2, 5, 7]),
        ("/finance", &[3, 4, 7]),
        ("sport/tennis", &[2, 3, 7, 9]),
        ("sport/tennis/", &[2, 6, 7]),
        ("SPORT", &[5, 7]),
        ("Sport", &[5, 7, 8]),
        ("sport/tennis/player1/ranking", &[2, 7]),
    ];
    let mut p = broker.connected(ProtocolVersion::V5, "match-pub").await;
    for (topic, _) in cases {
        p.publish(publish(topic, topic, QoS::AtMostOnce, None))
            .await;
    }
    for (topic, want) in cases {
        let got = sub.recv_publish().await;
        assert_eq!(&*got.topic, topic);
        let mut ids = got.properties.subscription_identifiers.clone();
        ids.sort_unstable();
        assert_eq!(ids, want, "filters matching {topic:?}");
    }
    sub.expect_silence(QUIET).await;
}

#[tokio::test]
async fn retained_messages_match_filters_like_live_ones() {
    // MQTT-3.3.1-9 with the matching rules of §4.7 (MQTT-4.7.2-1 for "$" topics): the
    // retained messages sent on SUBSCRIBE are exactly those a live PUBLISH to the same
    // topics would have reached.
    let broker = start().await;
    let mut p = broker.connected(ProtocolVersion::V5, "rmatch-pub").await;
    let topics = [
        "a//b",
        "sport",
        "/finance",
        "sport/tennis",
        "sport/tennis/",
        "SPORT",
        "$app/x",
        "$app",
    ];
    for (i, topic) in topics.iter().enumerate() {
        let mut m = publish(topic, topic, QoS::AtLeastOnce, Some(i as u16 + 1));
        m.retain = true;
        publish_acked(&mut p, m).await;
    }
    let cases: [(&str, &[&str]); 9] = [
        ("a/+/b", &["a//b"]),
        ("sport/#", &["sport", "sport/tennis", "sport/tennis/"]),
        ("+/+", &["/finance", "sport/tennis"]),
        ("/+", &["/finance"]),
        ("+", &["sport", "SPORT"]),
        ("sport/tennis/+", &["sport/tennis/"]),
        (
            "#",
            &[
                "a//b",
                "sport",
                "/finance",
                "sport/tennis",
                "sport/tennis/",
                "SPORT",
            ],
        ),
        ("+/x", &[]),
        ("$app/#", &["$app/x", "$app"]),
    ];
    let mut sub = broker.connected(ProtocolVersion::V5, "rmatch-sub").await;
    let mut want = Vec::new();
    for (i, (f, topics)) in cases.iter().enumerate() {
        let id = i as u32 + 1;
        // Sent back to back: retained messages of one filter may arrive before the next
        // SUBACK.
        let mut s = subscribe(id as u16, f, QoS::AtMostOnce);
        s.properties.subscription_identifiers = vec![id];
        sub.send(&Packet::Subscribe(s)).await;
        want.extend(topics.iter().map(|t| (id, t.to_string())));
    }
    let mut got = Vec::new();
    while let Some(Some(packet)) = sub.recv_within(QUIET).await {
        match packet {
            Packet::Publish(m) => {
                assert!(m.retain);
                got.push((
                    m.properties.subscription_identifiers[0],
                    m.topic.to_string(),
                ));
            }
            Packet::SubAck(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn dollar_topics_need_an_explicit_first_level() {
    // MQTT-4.7.2-1 and §4.7.2: "#" and "+/..." do not match "$SYS/..." topics, "$SYS/#"
    // and "$SYS/+/x" do.
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "dl-sub").await;
    for (i, f) in ["#", "+/monitor/x", "$SYS/#", "$SYS/+/x", "+"]
        .iter()
        .enumerate()
    {
        let id = i as u32 + 1;
        subscribe_many(
            &mut sub,
            id as u16,
            vec![filter(f, QoS::AtMostOnce)],
            Some(id),
        )
        .await;
    }
    let mut p = broker.connected(ProtocolVersion::V5, "dl-pub").await;
    p.publish(publish("$SYS/monitor/x", "m", QoS::AtMostOnce, None))
        .await;
    p.publish(publish("$SYS", "top", QoS::AtMostOnce, None))
        .await;
    let got = sub.recv_publish().await;
    assert_eq!(&*got.topic, "$SYS/monitor/x");
    let mut ids = got.properties.subscription_identifiers.clone();
    ids.sort_unstable();
    assert_eq!(ids, vec![3, 4]);
    // "$SYS" is matched by "$SYS/#" (parent level) but not by "+" or "#".
    let got = sub.recv_publish().await;
    assert_eq!(&*got.topic, "$SYS");
    assert_eq!(got.properties.subscription_identifiers, vec![3]);
}

#[tokio::test]
async fn shared_wildcard_filters_do_not_match_dollar_topics() {
    // MQTT-4.7.2-1 applies to the Topic Filter inside "$share/{name}/": "#" and "+/..."
    // there do not match topics starting with "$".
    let broker = start().await;
    let mut sub = broker.connected(ProtocolVersion::V5, "sdl-sub").await;
    subscribe_one(&mut sub, 1, "$share/g/#", QoS::AtMostOnce).await;
    subscribe_one(&mut sub, 2, "$share/h/+/x", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "sdl-pub").await;
    p.publish(publish("$app/x", "d", QoS::AtMostOnce, None))
        .await;
    p.publish(publish("app/x", "n", QoS::AtMostOnce, None))
        .await;
    // The ordinary topic arrives twice (once per group); the "$" one never.
    for _ in 0..2 {
        assert_eq!(&*sub.recv_publish().await.topic, "app/x");
    }
    sub.expect_silence(QUIET).await;
}

#[tokio::test]
async fn suback_and_unsuback_echo_the_packet_identifier() {
    // MQTT-3.8.4-2 and MQTT-3.10.4-4: SUBACK / UNSUBACK carry the request's Packet
    // Identifier; MQTT-3.8.4-6 / MQTT-3.10.4-5(5.0 -6): one reason per filter, in order.
    let broker = start().await;
    let mut c = broker.connected(ProtocolVersion::V5, "echo").await;
    let suback = subscribe_many(
        &mut c,
        4242,
        vec![
            filter("e/0", QoS::AtMostOnce),
            filter("e/2", QoS::ExactlyOnce),
            filter("e/1", QoS::AtLeastOnce),
        ],
        None,
    )
    .await;
    assert_eq!(suback.packet_id, 4242);
    assert_eq!(
        suback.reasons,
        vec![
            ReasonCode::Success,
            ReasonCode::GrantedQoS2,
            ReasonCode::GrantedQoS1
        ]
    );
    let unsuback = unsubscribe(&mut c, 4343, &["e/2", "none", "e/0"]).await;
    assert_eq!(unsuback.packet_id, 4343);
    assert_eq!(
        unsuback.reasons,
        vec![
            ReasonCode::Success,
            ReasonCode::NoSubscriptionExisted,
            ReasonCode::Success
        ]
    );
}

#[tokio::test]
async fn unsubscribe_compares_filters_character_by_character() {
    // MQTT-3.10.4-1: only an identical filter is removed ("u/+" does not remove "u/a");
    // MQTT-3.10.4-2: after UNSUBACK no new messages are delivered for the removed one.
    let broker = start().await;
    let mut c = broker.connected(ProtocolVersion::V3_1_1, "unsub").await;
    c.subscribe("u/a", QoS::AtMostOnce).await;
    c.subscribe("u/#", QoS::AtMostOnce).await;
    unsubscribe(&mut c, 2, &["u/+"]).await;
    let mut p = broker.connected(ProtocolVersion::V3_1_1, "unsub-p").await;
    p.publish(publish("u/a", "1", QoS::AtMostOnce, None)).await;
    assert_eq!(&c.recv_publish().await.payload[..], b"1");
    unsubscribe(&mut c, 3, &["u/a", "u/#"]).await;
    p.publish(publish("u/a", "2", QoS::AtMostOnce, None)).await;
    c.expect_silence(QUIET).await;
}

#[tokio::test]
async fn v311_resubscribe_resends_retained_messages() {
    // 3.1.1 MQTT-3.8.4-3: a SUBSCRIBE with an existing filter replaces the subscription and
    // re-sends the matching retained messages.
    let broker = start().await;
    let mut p = broker.connected(ProtocolVersion::V3_1_1, "rs-p").await;
    let mut m = publish("rs/t", "kept", QoS::AtLeastOnce, Some(1));
    m.retain = true;
    publish_acked(&mut p, m).await;
    let mut c = broker.connected(ProtocolVersion::V3_1_1, "rs-s").await;
    c.subscribe("rs/#", QoS::AtMostOnce).await;
    assert_eq!(&c.recv_publish().await.payload[..], b"kept");
    c.subscribe("rs/#", QoS::AtLeastOnce).await;
    let again = c.recv_publish().await;
    assert_eq!(&again.payload[..], b"kept");
    assert!(again.retain);
    assert_eq!(
        again.qos,
        QoS::AtLeastOnce,
        "the new subscription's QoS applies"
    );
}

#[tokio::test]
async fn resubscribe_replaces_the_subscription_identifier() {
    // MQTT-3.8.4-3 (5.0): the new subscription replaces the old one, including its
    // Subscription Identifier; a SUBSCRIBE without one removes it (§3.8.2.1.2).
    let broker = start().await;
    let mut c = broker.connected(ProtocolVersion::V5, "rsid").await;
    subscribe_many(&mut c, 1, vec![filter("rsid", QoS::AtMostOnce)], Some(5)).await;
    subscribe_many(&mut c, 2, vec![filter("rsid", QoS::AtMostOnce)], Some(6)).await;
    let mut p = broker.connected(ProtocolVersion::V5, "rsid-p").await;
    p.publish(publish("rsid", "a", QoS::AtMostOnce, None)).await;
    assert_eq!(
        c.recv_publish().await.properties.subscription_identifiers,
        vec![6]
    );
    subscribe_one(&mut c, 3, "rsid", QoS::AtMostOnce).await;
    p.publish(publish("rsid", "b", QoS::AtMostOnce, None)).await;
    assert!(
        c.recv_publish()
            .await
            .properties
            .subscription_identifiers
            .is_empty()
    );
}

// ----- shared subscriptions (MQTT 5.0 §4.8.2) ----------------------------------------------

#[tokio::test]
async fn shared_subscription_respects_the_granted_qos() {
    // MQTT-4.8.2-3: the server respects the granted QoS of the member's subscription.
    let broker = start().await;
    let mut m2 = broker.connected(ProtocolVersion::V5, "sq-2").await;
    let suback = subscribe_one(&mut m2, 1, "$share/g/sq", QoS::ExactlyOnce).await;
    assert_eq!(suback.reasons, vec![ReasonCode::GrantedQoS2]);
    let mut p = broker.connected(ProtocolVersion::V5, "sq-p").await;
    publish_acked(&mut p, publish("sq", "x", QoS::ExactlyOnce, Some(1))).await;
    let got = m2.recv_publish().await;
    assert_eq!(got.qos, QoS::ExactlyOnce);
    assert_eq!(
        &*got.topic, "sq",
        "the shared prefix is not part of the Topic Name"
    );
    let id = got.packet_id.unwrap();
    m2.send(&Packet::PubRec(response(id))).await;
    assert_eq!(m2.recv().await, Some(Packet::PubRel(response(id))));
    m2.send(&Packet::PubComp(response(id))).await;

    let mut m0 = broker.connected(ProtocolVersion::V5, "sq-0").await;
    subscribe_one(&mut m0, 1, "$share/h/sq", QoS::AtMostOnce).await;
    publish_acked(&mut p, publish("sq", "y", QoS::ExactlyOnce, Some(2))).await;
    let got = m0.recv_publish().await;
    assert_eq!(got.qos, QoS::AtMostOnce);
}

#[tokio::test]
async fn unsubscribing_a_shared_subscription_stops_its_messages() {
    // MQTT-3.10.4-1/-2 applied to "$share/..." filters (MQTT 5.0 §4.8.2).
    let broker = start().await;
    let mut c = broker.connected(ProtocolVersion::V5, "us-shared").await;
    subscribe_one(&mut c, 1, "$share/g/us", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "us-p").await;
    p.publish(publish("us", "1", QoS::AtMostOnce, None)).await;
    assert_eq!(&c.recv_publish().await.payload[..], b"1");
    let unsuback = unsubscribe(&mut c, 2, &["$share/g/us"]).await;
    assert_eq!(unsuback.reasons, vec![ReasonCode::Success]);
    p.publish(publish("us", "2", QoS::AtMostOnce, None)).await;
    c.expect_silence(QUIET).await;
}

#[tokio::test]
async fn shared_and_ordinary_subscriptions_each_get_a_copy() {
    // MQTT 5.0 §4.8.2: a client with a Shared and a Non-shared Subscription that both match
    // receives one copy for the non-shared one and, as the group's only member, another for
    // the shared one.
    let broker = start().await;
    let mut c = broker.connected(ProtocolVersion::V5, "both").await;
    subscribe_many(
        &mut c,
        1,
        vec![filter("$share/g/both", QoS::AtMostOnce)],
        Some(1),
    )
    .await;
    subscribe_many(&mut c, 2, vec![filter("both", QoS::AtMostOnce)], Some(2)).await;
    let mut p = broker.connected(ProtocolVersion::V5, "both-p").await;
    p.publish(publish("both", "x", QoS::AtMostOnce, None)).await;
    let mut ids = vec![
        c.recv_publish().await.properties.subscription_identifiers,
        c.recv_publish().await.properties.subscription_identifiers,
    ];
    ids.sort();
    assert_eq!(ids, vec![vec![1], vec![2]]);
    c.expect_silence(QUIET).await;
}

#[tokio::test]
async fn shared_groups_each_get_one_copy() {
    // MQTT 5.0 §4.8.2: each Shared Subscription (group) gets the message once, however many
    // members it has.
    let broker = start().await;
    let mut a1 = broker.connected(ProtocolVersion::V5, "ga-1").await;
    let mut a2 = broker.connected(ProtocolVersion::V5, "ga-2").await;
    let mut b1 = broker.connected(ProtocolVersion::V5, "gb-1").await;
    for c in [&mut a1, &mut a2] {
        subscribe_many(c, 1, vec![filter("$share/a/gg", QoS::AtMostOnce)], None).await;
    }
    subscribe_one(&mut b1, 1, "$share/b/gg", QoS::AtMostOnce).await;
    let mut p = broker.connected(ProtocolVersion::V5, "gg-p").await;
    p.publish(publish("gg", "x", QoS::AtMostOnce, None)).await;
    assert_eq!(&b1.recv_publish().await.payload[..], b"x");
    let one = a1.recv_within(QUIET).await.flatten();
    let two = a2.recv_within(QUIET).await.flatten();
    assert!(
        one.is_some() != two.is_some(),
        "exactly one member of group a: {one:?} / {two:?}"
    );
}

#[tokio::test]
async fn invalid_share_names_are_refused() {
    // MQTT-4.8.2-1 (ShareName at least one character) and MQTT-4.8.2-2 (no "/", "+", "#";
    // followed by "/" and a Topic Filter). The server answers 0x8F for the filter or closes
    // the connection with a Protocol Error / Malformed Packet.
    let broker = start().await;
    for bad in [
        "$share//t",
        "$share/g",
        "$share/a+b/t",
        "$share/#/t",
        "$share/g/",
    ] {
        let mut c = broker.connected(ProtocolVersion::V5, "bad-share").await;
        let mut s = subscribe(1, bad, QoS::AtMostOnce);
        s.filters[0].options.qos = QoS::AtMostOnce;
        c.send(&Packet::Subscribe(s)).await;
        match c.recv().await {
            Some(Packet::SubAck(suback)) => {
                assert_eq!(
                    suback.reasons,
                    vec![ReasonCode::TopicFilterInvalid],
                    "{bad}"
                )
            }
            Some(Packet::Disconnect(d)) => {
                assert!(
                    matches!(d.reason.code(), 0x81 | 0x82 | 0x8F),
                    "{bad}: {d:?}"
                )
            }
            None => {}
            other => panic!("{bad}: unexpected {other:?}"),
        }
    }
}
