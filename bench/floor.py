"""The bare floor of the message path: the least work a durable pipeline can do per message on these servers.

A producer appends JSON messages to a Redis stream one at a time; K consumer *processes* (one consumer group)
each run one PostgreSQL transaction per message — insert the message, upsert the contact, update the
conversation, insert a log row: 4 statements on bench-only tables — then append the reply to an outbound
stream and acknowledge, in one pipelined round trip. No connector, no RQ, no batching. ``bench/pipeline.py``
runs it on the same servers and in the same run as the product and prints the product's figures as ratios to it.

    python bench/floor.py consume REDIS_URL DATABASE_URL     # one consumer (pipeline.py starts K of them)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

IN = "floor:in"
GROUP = "floor"
OUT = "floor:out:{}"
READY = "floor:ready:{}"
CONTACTS = 1000  # distinct contacts the messages are spread over; their conversations exist beforehand
BATCH = 100  # entries one XREADGROUP may return (each still gets its own transaction)

SCHEMA = """
DROP TABLE IF EXISTS floor_messages, floor_contacts, floor_conversations, floor_event_log;
CREATE TABLE floor_contacts (
  id bigserial PRIMARY KEY, instance_id int NOT NULL, wa_id text NOT NULL, name text,
  attrs jsonb NOT NULL DEFAULT '{}', last_seen_at timestamptz NOT NULL DEFAULT now(),
  msg_count int NOT NULL DEFAULT 0, UNIQUE (instance_id, wa_id));
CREATE TABLE floor_conversations (
  id bigserial PRIMARY KEY, instance_id int NOT NULL, wa_id text NOT NULL,
  funnel_step text NOT NULL DEFAULT 'start', state jsonb NOT NULL DEFAULT '{}',
  updated_at timestamptz NOT NULL DEFAULT now(), UNIQUE (instance_id, wa_id));
CREATE TABLE floor_messages (
  id bigserial PRIMARY KEY, instance_id int NOT NULL, wa_id text NOT NULL, ext_id text NOT NULL,
  direction char(1) NOT NULL, body text, payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (instance_id, ext_id));
CREATE INDEX floor_messages_conv_idx ON floor_messages (instance_id, wa_id, created_at);
CREATE TABLE floor_event_log (
  id bigserial PRIMARY KEY, instance_id int NOT NULL, wa_id text NOT NULL, kind text NOT NULL, data jsonb,
  created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX floor_event_log_created_idx ON floor_event_log (created_at);
"""

INSERT_MESSAGE = """INSERT INTO floor_messages (instance_id, wa_id, ext_id, direction, body, payload)
                    VALUES (%(instance_id)s, %(wa_id)s, %(ext_id)s, 'i', %(body)s, %(payload)s)"""
UPSERT_CONTACT = """INSERT INTO floor_contacts (instance_id, wa_id, name, attrs, msg_count)
                    VALUES (%(instance_id)s, %(wa_id)s, %(name)s, %(attrs)s, 1)
                    ON CONFLICT (instance_id, wa_id) DO UPDATE
                    SET name = EXCLUDED.name, last_seen_at = now(), msg_count = floor_contacts.msg_count + 1,
                        attrs = floor_contacts.attrs || EXCLUDED.attrs"""
UPDATE_CONVERSATION = """UPDATE floor_conversations SET funnel_step = %(step)s, state = state || %(state)s,
                         updated_at = now() WHERE instance_id = %(instance_id)s AND wa_id = %(wa_id)s"""
INSERT_LOG = """INSERT INTO floor_event_log (instance_id, wa_id, kind, data)
                VALUES (%(instance_id)s, %(wa_id)s, 'funnel_step', %(log)s)"""


def libpq_url(database_url: str) -> str:
    """The product's SQLAlchemy URL (``postgresql+psycopg://``) as psycopg's own connect string."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def reset(database_url: str, redis_client) -> None:
    """Fresh floor tables (conversations created beforehand, as in a steady state) and an empty stream group."""
    import psycopg

    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("""INSERT INTO floor_conversations (instance_id, wa_id)
                        SELECT inst, '5511' || lpad(g::text, 9, '0')
                        FROM generate_series(0, %s) g, generate_series(1, 2) inst""", (CONTACTS - 1,))
        conn.execute("VACUUM ANALYZE floor_conversations")
    redis_client.delete(IN, OUT.format(1), OUT.format(2))
    redis_client.xgroup_create(IN, GROUP, id="0", mkstream=True)


def message(k: int) -> dict:
    """The k-th message the producer sends (two numbers, ``CONTACTS`` leads)."""
    return {"instance_id": 1 + k % 2, "wa_id": "5511" + str(k % CONTACTS).zfill(9),
            "ext_id": f"wamid.{os.getpid()}.{time.time_ns()}.{k}", "name": f"User {k % CONTACTS}",
            "body": f"hello this is message {k}, quero saber o preco", "type": "text", "ts": time.time()}


def _step(conn, m: dict) -> dict:
    """One message = one transaction of 4 statements; returns the reply to append."""
    from psycopg.types.json import Jsonb

    p = {"instance_id": m["instance_id"], "wa_id": m["wa_id"], "ext_id": m["ext_id"], "body": m["body"],
         "payload": Jsonb(m), "name": m["name"], "attrs": Jsonb({"lang": "pt", "last_type": m["type"]}),
         "step": "qualify", "state": Jsonb({"last_msg": m["ext_id"], "score": 3}),
         "log": Jsonb({"step": "qualify", "ext_id": m["ext_id"], "reply": "ok"})}
    with conn.transaction():
        conn.execute(INSERT_MESSAGE, p)
        conn.execute(UPSERT_CONTACT, p)
        conn.execute(UPDATE_CONVERSATION, p)
        conn.execute(INSERT_LOG, p)
    return {"to": m["wa_id"], "text": "Obrigado! Qual seu nome?", "in_reply_to": m["ext_id"]}


def consume(redis_url: str, database_url: str) -> None:
    """One consumer process: read the group, one transaction per message, reply and ack; ends on SIGTERM."""
    import psycopg
    import redis

    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    client = redis.Redis.from_url(redis_url)
    conn = psycopg.connect(libpq_url(database_url), autocommit=False)
    name = f"c{os.getpid()}"
    client.set(READY.format(name), 1)
    while not stop:
        reply = client.xreadgroup(GROUP, name, {IN: ">"}, count=BATCH, block=200)
        for _, entries in reply or []:
            for entry_id, fields in entries:
                m = json.loads(fields[b"d"])
                answer = _step(conn, m)
                pipe = client.pipeline(transaction=False)
                pipe.xadd(OUT.format(m["instance_id"]), {"d": json.dumps(answer)})
                pipe.xack(IN, GROUP, entry_id)
                pipe.execute()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "consume":
        sys.exit(__doc__)
    consume(sys.argv[2], sys.argv[3])
