"""Interop checks for roost with the paho-mqtt Python client (MQTT 3.1.1 and 5.0).

Usage: python3 paho_client.py HOST PORT
Exits 0 when every check passed; prints the failing check and exits 1 otherwise.
"""

import queue
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST = sys.argv[1]
PORT = int(sys.argv[2])
# Generous: the suite runs on loaded machines; only a failing check waits this long.
TIMEOUT = 10.0


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def client(client_id, protocol, **kwargs):
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        **kwargs,
    )
    c.inbox = queue.Queue()
    c.connack = queue.Queue()
    c.subacks = queue.Queue()
    c.on_message = lambda cl, userdata, msg: cl.inbox.put(msg)
    c.on_connect = lambda cl, userdata, flags, reason, props: cl.connack.put((flags, reason, props))
    c.on_subscribe = lambda cl, userdata, mid, reasons, props: cl.subacks.put(mid)
    return c


def connect(c, **kwargs):
    c.connect(HOST, PORT, keepalive=30, **kwargs)
    c.loop_start()
    try:
        flags, reason, props = c.connack.get(timeout=TIMEOUT)
    except queue.Empty:
        fail(f"{c._client_id!r}: no CONNACK")
    if reason.is_failure:
        fail(f"{c._client_id!r}: CONNACK refused: {reason}")
    return flags, props


def expect(c, what):
    try:
        return c.inbox.get(timeout=TIMEOUT)
    except queue.Empty:
        fail(f"no message received: {what}")


def subscribe(c, topic, qos, **kwargs):
    result, mid = c.subscribe(topic, qos, **kwargs)
    if result != mqtt.MQTT_ERR_SUCCESS:
        fail(f"subscribe {topic}: {result}")
    # Publish only once the SUBACK says the subscription is in place.
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            acked = c.subacks.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            fail(f"subscribe {topic}: no SUBACK")
        if acked == mid:
            return


def check_v311_qos_levels():
    sub = client("paho-v311-sub", mqtt.MQTTv311)
    pub = client("paho-v311-pub", mqtt.MQTTv311)
    connect(sub)
    connect(pub)
    subscribe(sub, "paho/v311/#", 2)
    for qos in (0, 1, 2):
        info = pub.publish(f"paho/v311/q{qos}", f"qos {qos}".encode(), qos=qos)
        info.wait_for_publish(timeout=TIMEOUT)
        msg = expect(sub, f"3.1.1 QoS {qos}")
        if msg.topic != f"paho/v311/q{qos}" or msg.payload != f"qos {qos}".encode() or msg.qos != qos:
            fail(f"3.1.1 QoS {qos}: got {msg.topic} {msg.payload!r} qos {msg.qos}")
    for c in (sub, pub):
        c.disconnect()
        c.loop_stop()
    print("ok: 3.1.1 QoS 0/1/2 round trip", flush=True)


def check_v5_properties():
    sub = client("paho-v5-sub", mqtt.MQTTv5)
    pub = client("paho-v5-pub", mqtt.MQTTv5)
    connect(sub, clean_start=True)
    connect(pub, clean_start=True)
    sub_props = Properties(PacketTypes.SUBSCRIBE)
    sub_props.SubscriptionIdentifier = 7
    subscribe(sub, "paho/v5/#", 1, properties=sub_props)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("site", "north")
    props.ResponseTopic = "paho/replies"
    props.CorrelationData = b"\x01\x02"
    props.ContentType = "text/plain"
    props.PayloadFormatIndicator = 1
    pub.publish("paho/v5/props", b"hello", qos=1, properties=props).wait_for_publish(timeout=TIMEOUT)
    msg = expect(sub, "5.0 publish with properties")
    p = msg.properties
    if msg.payload != b"hello":
        fail(f"5.0 payload: {msg.payload!r}")
    if ("site", "north") not in getattr(p, "UserProperty", []):
        fail(f"5.0 user property lost: {p}")
    if getattr(p, "ResponseTopic", None) != "paho/replies":
        fail(f"5.0 response topic lost: {p}")
    if getattr(p, "CorrelationData", None) != b"\x01\x02":
        fail(f"5.0 correlation data lost: {p}")
    if getattr(p, "ContentType", None) != "text/plain":
        fail(f"5.0 content type lost: {p}")
    if getattr(p, "SubscriptionIdentifier", None) != [7]:
        fail(f"5.0 subscription identifier: {getattr(p, 'SubscriptionIdentifier', None)}")
    for c in (sub, pub):
        c.disconnect()
        c.loop_stop()
    print("ok: 5.0 properties passed through with subscription identifier", flush=True)


def check_v5_will():
    watcher = client("paho-will-watcher", mqtt.MQTTv5)
    connect(watcher)
    subscribe(watcher, "paho/will", 1)
    dying = client("paho-dying", mqtt.MQTTv5)
    dying.will_set("paho/will", b"gone", qos=1)
    connect(dying)
    # Close the socket without DISCONNECT: the broker must publish the will (MQTT-3.1.2-8).
    dying.loop_stop()
    dying.socket().close()
    msg = expect(watcher, "will message after abnormal close")
    if msg.payload != b"gone":
        fail(f"will payload: {msg.payload!r}")
    watcher.disconnect()
    watcher.loop_stop()
    print("ok: 5.0 will on abnormal close", flush=True)


def check_retained():
    pub = client("paho-retain-pub", mqtt.MQTTv311)
    connect(pub)
    pub.publish("paho/retained", b"kept", qos=1, retain=True).wait_for_publish(timeout=TIMEOUT)
    pub.disconnect()
    pub.loop_stop()
    sub = client("paho-retain-sub", mqtt.MQTTv5)
    connect(sub)
    subscribe(sub, "paho/retained", 1)
    msg = expect(sub, "retained message on subscribe")
    if msg.payload != b"kept" or not msg.retain:
        fail(f"retained: {msg.payload!r} retain={msg.retain}")
    sub.disconnect()
    sub.loop_stop()
    print("ok: retained message delivered with the retain flag", flush=True)


check_v311_qos_levels()
check_v5_properties()
check_v5_will()
check_retained()
print("all paho checks passed", flush=True)
