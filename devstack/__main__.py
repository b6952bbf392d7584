"""``python -m devstack <command>``: the local stack's command line.

    up                 run the local stack in the foreground (``make dev``)
    consume            print the stack's Kafka messages as JSON lines
    emit-test-event    write one test event through the outbox (the relay publishes it)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from .stack import DEFAULT_STATE_DIR, DUMMY_AWS, KEK_FILE, STACK_ENV, Options, read_env_file, run


def _state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help="where the stack keeps its key, settings and data "
                             f"(default: {DEFAULT_STATE_DIR})")


def _stack_env(state_dir: Path) -> dict[str, str]:
    path = state_dir / STACK_ENV
    if not path.exists():
        raise SystemExit(f"devstack: the local stack is not running (no {path}); start it with `make dev`")
    return read_env_file(path)


# --- up -------------------------------------------------------------------------------------------
def cmd_up(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    options = Options(store=args.store, persist=args.persist, port=args.port,
                      kafka_brokers=args.kafka_brokers, state_dir=args.state_dir,
                      rotate_every=args.rotate_every, access_log=args.access_log)
    return run(options)


# --- consume --------------------------------------------------------------------------------------
def cmd_consume(args: argparse.Namespace) -> int:
    from .consume import all_topics, iter_messages, resolve_topics

    env = _stack_env(args.state_dir)
    prefix = env.get("KAFKA_TOPIC_PREFIX", "")
    topics = resolve_topics(args.topic, prefix) if args.topic else all_topics(prefix)
    print(f"devstack: reading {', '.join(topics)} from {env['KAFKA_BOOTSTRAP']}", file=sys.stderr, flush=True)
    try:
        for message in iter_messages(env["KAFKA_BOOTSTRAP"], topics, from_beginning=not args.new,
                                     timeout=args.timeout, max_messages=args.max):
            print(json.dumps(message, separators=(",", ":")), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


# --- emit-test-event ------------------------------------------------------------------------------
def cmd_emit_test_event(args: argparse.Namespace) -> int:
    env = _stack_env(args.state_dir)
    if env.get("STORE") == "memory":
        print("devstack: the stack runs with --store memory, whose store lives inside the `up` process; "
              "restart it with --store dynamodb to emit events from another terminal", file=sys.stderr)
        return 2
    kek_path = args.state_dir / KEK_FILE
    values = {
        "STORE": "dynamodb", "TABLE_NAME": env["TABLE_NAME"], "DYNAMODB_ENDPOINT": env["DYNAMODB_ENDPOINT"],
        "AWS_REGION": "us-east-1", "ISSUER": env["ISSUER"], "KAFKA_TOPIC_PREFIX": env["KAFKA_TOPIC_PREFIX"],
        "NAMESPACE": env.get("NAMESPACE", "latchkey"), "PARENT_NAMESPACE": env.get("PARENT_NAMESPACE", ""),
        "METRICS_DISABLED": "true",
    }
    if kek_path.exists():
        values["LOCAL_KEK"] = kek_path.read_text(encoding="ascii").strip()
    for name, value in DUMMY_AWS.items():
        if not os.environ.get(name):
            values[name] = value
    os.environ.update(values)
    os.environ.pop("KMS_KEY_ID", None)

    from latchkey import services
    from latchkey.events import EventName, build_event, outbox_put, topic_name

    services.reset()
    cfg = services.settings()
    event = build_event(EventName.OAUTH_TOKEN_GENERATED, namespace=cfg.namespace,
                        parent_namespace=cfg.parent_namespace, client_id=args.client_id,
                        user_id=args.user_id or uuid.uuid4().hex, session_id=uuid.uuid4().hex,
                        response_type="token", trace_id=uuid.uuid4().hex)
    services.item_store().write(outbox_put(event, ttl=cfg.event_ttl))
    print(json.dumps({"id": event.id, "topic": topic_name(event.topic, cfg.kafka_topic_prefix),
                      "key": event.key, "message": event.message}, separators=(",", ":")), flush=True)
    return 0


def cmd_config_table(args: argparse.Namespace) -> int:
    from devstack.config_docs import README, write_readme

    changed = write_readme()
    print(f"{README.name}: configuration table {'updated' if changed else 'already up to date'}")
    return 0


# --- the parser -----------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m devstack", description="Latchkey's local stack.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run the local stack in the foreground (Ctrl-C stops it)")
    up.add_argument("--store", choices=("dynamodb", "memory"), default="dynamodb",
                    help="dynamodb: DynamoDB Local (needs java); memory: in-process store "
                         "(default: dynamodb)")
    up.add_argument("--persist", action="store_true",
                    help="keep DynamoDB Local's data in <state-dir>/dynamodb between runs")
    up.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")),
                    help="the API's port on 127.0.0.1 (default: $PORT or 3000; 0 picks a free one)")
    up.add_argument("--kafka-brokers", type=int, default=1, help="brokers in the mock cluster (default: 1)")
    up.add_argument("--rotate-every", type=float, default=300.0,
                    help="seconds between key rotation steps (default: 300)")
    up.add_argument("--access-log", action="store_true", help="log every request to stderr")
    _state_dir_option(up)
    up.set_defaults(run=cmd_up)

    consume = commands.add_parser("consume", help="print the stack's Kafka messages as JSON lines")
    consume.add_argument("--topic", action="append",
                         help="a topic, with or without the stack's prefix (repeatable; default: all)")
    consume.add_argument("--max", type=int, help="stop after this many messages")
    consume.add_argument("--timeout", type=float, help="stop after this many seconds")
    consume.add_argument("--new", action="store_true", help="only messages published from now on")
    _state_dir_option(consume)
    consume.set_defaults(run=cmd_consume)

    emit = commands.add_parser("emit-test-event",
                               help="write one test oauthTokenGenerated event through the outbox")
    emit.add_argument("--client-id", default="devstack-test-client")
    emit.add_argument("--user-id", default="", help="the event's userId and Kafka key (default: random)")
    _state_dir_option(emit)
    emit.set_defaults(run=cmd_emit_test_event)

    table = commands.add_parser("config-table", help="regenerate README.md's configuration table")
    table.set_defaults(run=cmd_config_table)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.run
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
