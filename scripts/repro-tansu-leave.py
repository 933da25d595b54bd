#!/usr/bin/env python3
"""Reproduces a fault of the local test broker (tansu): a member that leaves its group while the
group is forming stays the group's leader, and no member is ever assigned a partition again.

    .local/venv/bin/python scripts/repro-tansu-leave.py [BROKER] [DELAY_S]

Member A joins and is assigned every partition; member B joins; DELAY_S later (default 0.5) A
closes, which sends LeaveGroup while the group waits for A to rejoin. B, and then a fresh member
C, wait 30 s each for an assignment. Exit 0 when both are assigned (a healthy broker, e.g.
Apache Kafka), 1 when the group is wedged (tansu, every time here), 2 on a setup error.
Uses confluent-kafka from PyPI (scripts/services.sh installs it in .local/venv), so the
pipeline's own code plays no part. docs/TROUBLESHOOTING.md has what it means for the pipeline.
"""
import sys
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

BROKER = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
DELAY_S = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
WAIT_S = 30.0


def member(group, topic, assigned, name):
    c = Consumer({"bootstrap.servers": BROKER, "group.id": group, "session.timeout.ms": 6000,
                  "max.poll.interval.ms": 20000})

    def on_assign(_, partitions):
        assigned[name] = sorted(p.partition for p in partitions)

    c.subscribe([topic], on_assign=on_assign)
    return c


def wait_assigned(consumers, assigned, name):
    deadline = time.time() + WAIT_S
    while name not in assigned and time.time() < deadline:
        for c in consumers:
            c.poll(0.05)
    return assigned.get(name)


def main():
    topic = "repro_" + uuid.uuid4().hex[:8]
    group = "repro_" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": BROKER})  # kept alive until the topic exists
    try:
        admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(10)
    except Exception as e:  # noqa: BLE001 - any failure here is a setup error
        print(f"cannot create topic {topic} on {BROKER}: {e}")
        return 2
    assigned = {}
    a = member(group, topic, assigned, "a")
    if wait_assigned([a], assigned, "a") is None:
        print("setup: member A was never assigned")
        return 2
    b = member(group, topic, assigned, "b")
    until = time.time() + DELAY_S
    while time.time() < until:
        a.poll(0.05)
        b.poll(0.05)
    a.close()
    print(f"A assigned {assigned['a']}, left {DELAY_S} s after B joined")
    got_b = wait_assigned([b], assigned, "b")
    print(f"B: {'assigned ' + str(got_b) if got_b is not None else f'no assignment in {WAIT_S:.0f} s'}")
    c = member(group, topic, assigned, "c")
    got_c = wait_assigned([b, c], assigned, "c")
    print(f"C (fresh member): {'assigned ' + str(got_c) if got_c is not None else f'no assignment in {WAIT_S:.0f} s'}")
    b.close()
    c.close()
    if got_b is None or got_c is None:
        print("the group is wedged")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
