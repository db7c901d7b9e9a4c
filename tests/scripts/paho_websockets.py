"""paho-mqtt over WebSockets against roost: a client on `transport="websockets"` and one on
TCP exchange messages both ways at QoS 0, 1 and 2, with MQTT 3.1.1 and with MQTT 5.0.

Usage: python3 paho_websockets.py HOST TCP_PORT WS_PORT WS_PATH [CA_FILE [CERT_FILE KEY_FILE]]
With CA_FILE, both clients use TLS trusting it (wss:// and MQTT over TLS), presenting the
client certificate CERT_FILE/KEY_FILE when given.
Exits 0 when every check passed; prints the failing check and exits 1 otherwise.
"""

import queue
import sys

import paho.mqtt.client as mqtt

HOST = sys.argv[1]
TCP_PORT = int(sys.argv[2])
WS_PORT = int(sys.argv[3])
WS_PATH = sys.argv[4]
CA_FILE = sys.argv[5] if len(sys.argv) > 5 else None
CERT_FILE = sys.argv[6] if len(sys.argv) > 7 else None
KEY_FILE = sys.argv[7] if len(sys.argv) > 7 else None
# Generous: the suite runs on loaded machines; only a failing check waits this long.
TIMEOUT = 10.0


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def started(client_id, protocol, websockets):
    transport = "websockets" if websockets else "tcp"
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        transport=transport,
    )
    if websockets:
        c.ws_set_options(path=WS_PATH)
    if CA_FILE:
        c.tls_set(ca_certs=CA_FILE, certfile=CERT_FILE, keyfile=KEY_FILE)
    c.inbox = queue.Queue()
    c.connack = queue.Queue()
    c.subacks = queue.Queue()
    c.published = queue.Queue()
    c.on_message = lambda cl, userdata, msg: cl.inbox.put(msg)
    c.on_connect = lambda cl, userdata, flags, reason, props: cl.connack.put(reason)
    c.on_subscribe = lambda cl, userdata, mid, reasons, props: cl.subacks.put(mid)
    c.on_publish = lambda cl, userdata, mid, reason, props: cl.published.put(mid)
    try:
        c.connect(HOST, WS_PORT if websockets else TCP_PORT, keepalive=30)
    except OSError as error:
        fail(f"{client_id}: cannot connect over {transport}: {error}")
    c.loop_start()
    try:
        reason = c.connack.get(timeout=TIMEOUT)
    except queue.Empty:
        fail(f"{client_id}: no CONNACK over {transport}")
    if reason.is_failure:
        fail(f"{client_id}: CONNACK refused over {transport}: {reason}")
    return c


def subscribed(c, topic):
    c.subscribe(topic, qos=2)
    try:
        c.subacks.get(timeout=TIMEOUT)
    except queue.Empty:
        fail(f"no SUBACK for {topic}")


def exchange(sender, receiver, topic, qos, what):
    payload = f"{what} qos {qos}".encode()
    info = sender.publish(topic, payload, qos=qos)
    try:
        message = receiver.inbox.get(timeout=TIMEOUT)
    except queue.Empty:
        fail(f"{what}: qos {qos} message not delivered")
    if message.payload != payload or message.qos != qos or message.topic != topic:
        fail(f"{what}: got {message.topic} {message.payload!r} qos {message.qos}")
    if qos > 0:
        # PUBACK / PUBCOMP came back to the sender.
        info.wait_for_publish(timeout=TIMEOUT)
        if not info.is_published():
            fail(f"{what}: qos {qos} publish not acknowledged")


def check(protocol, name):
    over_ws = started(f"paho-ws-{name}", protocol, websockets=True)
    over_tcp = started(f"paho-tcp-{name}", protocol, websockets=False)
    subscribed(over_ws, f"{name}/to-ws")
    subscribed(over_tcp, f"{name}/to-tcp")
    for qos in (0, 1, 2):
        exchange(over_ws, over_tcp, f"{name}/to-tcp", qos, f"{name} ws->tcp")
        exchange(over_tcp, over_ws, f"{name}/to-ws", qos, f"{name} tcp->ws")
    for c in (over_ws, over_tcp):
        c.disconnect()
        c.loop_stop()
    print(f"{name}: ok", flush=True)


check(mqtt.MQTTv311, "v311")
check(mqtt.MQTTv5, "v5")
print("all paho websocket checks passed", flush=True)
