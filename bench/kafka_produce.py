"""Produces N ECS events to a Kafka topic (created with P partitions), keyed by host.

    python3 bench/kafka_produce.py BROKERS TOPIC N [PARTITIONS]
"""
import json
import sys

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

brokers, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
parts = int(sys.argv[4]) if len(sys.argv) > 4 else 4
admin = AdminClient({"bootstrap.servers": brokers})
for f in admin.create_topics([NewTopic(topic, num_partitions=parts, replication_factor=1)]).values():
    f.result()
p = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "batch.num.messages": 10000})
for i in range(n):
    host = f"host-{i % 64}"
    ev = {"@timestamp": "2026-12-01T00:00:00Z", "host": {"name": host},
          "event": {"category": ["process"], "id": f"bench-{topic}-{i}"},
          "process": {"name": "bash", "pid": i, "command_line": f"/bin/bash -c job{i % 100}"},
          "message": "alert beacon" if i % 500 == 0 else "process started"}
    while True:
        try:
            p.produce(topic, key=host, value=json.dumps(ev))
            break
        except BufferError:
            p.poll(0.05)
    if i % 10000 == 0:
        p.poll(0)
p.flush(60)
print(f"produced {n} events to {topic} ({parts} partitions)")
