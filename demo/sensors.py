#!/usr/bin/env python3
"""Simulated devices for the roost demo: a few sensors publishing every second (some readings
retained), and a dashboard client subscribed to everything, so that the broker both receives
and sends messages. Needs paho-mqtt 2 (`pip install paho-mqtt`)."""

import json
import math
import random
import sys
import time

import paho.mqtt.client as mqtt

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 1883

SENSORS = [
    # client id, topic, retained, protocol
    ("kitchen-thermo", "home/kitchen/temperature", True, mqtt.MQTTv5),
    ("garage-thermo", "home/garage/temperature", True, mqtt.MQTTv311),
    ("garden-humidity", "home/garden/humidity", False, mqtt.MQTTv5),
    ("power-meter", "home/power/watts", False, mqtt.MQTTv311),
    ("door-sensor", "home/hall/door", True, mqtt.MQTTv5),
]


def connect(client_id, protocol):
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol
    )
    while True:
        try:
            client.connect(HOST, PORT, keepalive=30)
            break
        except OSError:
            # The broker may still be starting: try again shortly.
            time.sleep(0.5)
    client.loop_start()
    return client


def main():
    dashboard = connect("demo-dashboard", mqtt.MQTTv5)
    dashboard.subscribe("home/#", qos=1)
    sensors = [(connect(cid, proto), topic, retain) for cid, topic, retain, proto in SENSORS]
    tick = 0
    while True:
        for index, (client, topic, retain) in enumerate(sensors):
            if topic.endswith("door") and tick % 5:
                continue  # the door reports less often
            value = round(20 + 5 * math.sin(tick / 10 + index) + random.random(), 2)
            payload = json.dumps({"value": value, "seq": tick})
            client.publish(topic, payload, qos=index % 2, retain=retain)
        tick += 1
        time.sleep(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
