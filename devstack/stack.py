"""The whole local stack in one process: ``python -m devstack up``.

DynamoDB Local (or the in-memory store) → the table from ``template.yaml`` → librdkafka's mock cluster
(or ``KAFKA_BOOTSTRAP``) → environment for the in-process handlers → a first key rotation step (so the
JWKS has keys) → dev seeds → the event relay thread → the local API gateway → ``<state>/stack.env``.
A key rotation step also runs every few minutes, like the template's hourly schedule.

:class:`Stack` is usable programmatically (tests start it in-process for ``--store memory``);
:meth:`Stack.stop` stops everything it started and restores the environment variables it changed.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import template
from .dynamodb_local import DynamoDBLocal, DynamoDBLocalError, create_table
from .gateway import Gateway, route_table
from .kafka_mock import KafkaMock, KafkaUnavailable
from .relay import CheckpointFile, MemorySource, Relay, StreamSource

log = logging.getLogger("devstack")

ROOT = template.ROOT
DEFAULT_STATE_DIR = ROOT / ".dev"
DEFAULT_TABLE = "latchkey-local"
STACK_ENV = "stack.env"
KEK_FILE = "kek"
DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


class StackError(RuntimeError):
    """The stack cannot start; the message says why and what to do."""


@dataclass
class Options:
    store: str = "dynamodb"
    persist: bool = False
    port: int = field(default_factory=lambda: int(os.environ.get("PORT", "3000")))
    kafka_brokers: int = 1
    state_dir: Path = DEFAULT_STATE_DIR
    rotate_every: float = 300.0
    table_name: str = field(default_factory=lambda: os.environ.get("TABLE_NAME") or DEFAULT_TABLE)
    topic_prefix: str = field(default_factory=lambda: os.environ.get("KAFKA_TOPIC_PREFIX", "local"))
    namespace: str = field(default_factory=lambda: os.environ.get("NAMESPACE") or "latchkey")
    access_log: bool = False


def load_or_create_kek(state_dir: Path) -> str:
    """The local key-encryption key (32 random bytes, base64) in ``<state>/kek``, created once, mode 0600."""
    path = state_dir / KEK_FILE
    if path.exists():
        value = path.read_text(encoding="ascii").strip()
        if len(base64.b64decode(value)) != 32:
            raise StackError(f"{path} does not hold a base64 32-byte key; delete it to get a new one")
        return value
    state_dir.mkdir(parents=True, exist_ok=True)
    value = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(value + "\n")
    return value


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def write_env_file(path: Path, values: dict[str, str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    os.replace(tmp, path)


class Stack:
    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()
        if self.options.store not in ("dynamodb", "memory"):
            raise StackError(f"unknown store {self.options.store!r}: use dynamodb or memory")
        self.state_dir = Path(self.options.state_dir).resolve()
        self.dynamodb: DynamoDBLocal | None = None
        self.kafka: KafkaMock | None = None
        self.gateway: Gateway | None = None
        self.relay: Relay | None = None
        self.stream_arn: str | None = None
        self.credentials: dict[str, str] = {}
        self.env: dict[str, str] = {}
        self._saved_env: dict[str, str | None] = {}
        self._stop_rotation = threading.Event()
        self._rotation: threading.Thread | None = None
        self._started = False

    # -- start -------------------------------------------------------------------------------------
    def start(self) -> Stack:
        if self._started:
            return self
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        opts = self.options
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / STACK_ENV).unlink(missing_ok=True)
        try:  # bind first: the issuer needs the port before anything is configured
            self.gateway = Gateway(port=opts.port, access_log=opts.access_log)
        except OSError as exc:
            raise StackError(f"cannot listen on 127.0.0.1:{opts.port} ({exc.strerror}); "
                             "choose another port with --port N (or PORT=N)") from exc
        issuer = f"http://127.0.0.1:{self.gateway.port}"

        endpoint = ""
        if opts.store == "dynamodb":
            db_path = self.state_dir / "dynamodb" if opts.persist else None
            self.dynamodb = DynamoDBLocal(db_path=db_path, log_path=self.state_dir / "dynamodb-local.log")
            self.dynamodb.start()
            endpoint = self.dynamodb.endpoint
            self.stream_arn = create_table(self.dynamodb.client(), opts.table_name)

        self.kafka = KafkaMock(opts.kafka_brokers).start()
        kek = load_or_create_kek(self.state_dir)

        env = {
            "STORE": opts.store, "TABLE_NAME": opts.table_name, "AWS_REGION": "us-east-1",
            "LOCAL_KEK": kek, "ISSUER": issuer, "KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "KAFKA_AUTH": "plaintext", "KAFKA_TOPIC_PREFIX": opts.topic_prefix, "NAMESPACE": opts.namespace,
            "METRICS_DISABLED": "true",
        }
        if endpoint:
            env["DYNAMODB_ENDPOINT"] = endpoint
        for name, value in DUMMY_AWS.items():
            if not os.environ.get(name):
                env[name] = value
        self._apply_env(env, remove=("KMS_KEY_ID",) + (() if endpoint else ("DYNAMODB_ENDPOINT",)))
        self.env = env

        from latchkey import services, signing

        services.reset()
        cfg = services.settings()
        report = signing.rotate(services.key_store(), services.envelope(), cfg.signing_algs,
                                services.rotation_policy())
        log.info("key rotation: %d key(s) created, %d activated", len(report.created), len(report.activated))

        from .seed import seed  # written alongside the stack; imported late (it needs the services)

        self.credentials = seed(cfg)

        if self.dynamodb is not None and self.stream_arn is not None:
            checkpoints = CheckpointFile(self.state_dir / "relay-checkpoints.json", self.stream_arn) \
                if opts.persist else None
            source: Any = StreamSource(self.dynamodb.client("dynamodbstreams"), self.stream_arn,
                                       checkpoints=checkpoints.load() if checkpoints else None)
            self.relay = Relay(source, on_commit=checkpoints.commit if checkpoints else None)
        else:
            self.relay = Relay(MemorySource(services.item_store(), table_name=opts.table_name))
        self.relay.start()

        self._preload_handlers()
        self.gateway.start()
        self._rotation = threading.Thread(target=self._rotate_periodically, name="devstack-rotation",
                                          daemon=True)
        self._rotation.start()
        write_env_file(self.state_dir / STACK_ENV, self.stack_env())

    def _apply_env(self, values: dict[str, str], remove: tuple[str, ...] = ()) -> None:
        for name in [*values, *remove]:
            if name not in self._saved_env:
                self._saved_env[name] = os.environ.get(name)
        os.environ.update(values)
        for name in remove:
            os.environ.pop(name, None)

    def _preload_handlers(self) -> None:
        """Import every handler now (a cold start before the first request); report, don't fail."""
        assert self.gateway is not None
        seen = set()
        for route in self.gateway.routes:
            if route.function.function in seen:
                continue
            seen.add(route.function.function)
            try:
                route.function.handler()
            except Exception:  # noqa: BLE001 - the route answers 500 until the file is fixed
                log.exception("%s cannot be loaded; its routes answer 500 until it is fixed",
                              route.function.function)

    def _rotate_periodically(self) -> None:
        from latchkey import services, signing

        while not self._stop_rotation.wait(self.options.rotate_every):
            try:
                report = signing.rotate(services.key_store(), services.envelope(),
                                        services.settings().signing_algs, services.rotation_policy())
                if any(vars(report).values()):
                    log.info("key rotation step: %s", vars(report))
            except Exception:  # noqa: BLE001 - try again next time, like the schedule would
                log.exception("key rotation step failed")

    # -- facts -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self.gateway is not None
        return f"http://127.0.0.1:{self.gateway.port}"

    def stack_env(self) -> dict[str, str]:
        return {
            "STORE": self.options.store, "ISSUER": self.env["ISSUER"], "API_URL": self.url,
            "DYNAMODB_ENDPOINT": self.env.get("DYNAMODB_ENDPOINT", ""), "TABLE_NAME": self.options.table_name,
            "KAFKA_BOOTSTRAP": self.env["KAFKA_BOOTSTRAP"], "KAFKA_TOPIC_PREFIX": self.options.topic_prefix,
            "NAMESPACE": self.options.namespace, "PARENT_NAMESPACE": os.environ.get("PARENT_NAMESPACE", ""),
        }

    def banner(self) -> str:
        from latchkey.events import topic_name

        from .consume import all_topics

        opts = self.options
        state = os.path.relpath(self.state_dir, Path.cwd())
        if state.startswith(".."):
            state = str(self.state_dir)
        if self.dynamodb is not None:
            storage = f"DynamoDB Local {self.dynamodb.endpoint}, table {opts.table_name} " + \
                      (f"(persisted in {state}/dynamodb)" if opts.persist else "(in memory)")
        else:
            storage = "in-memory store (this process only)"
        kafka = self.kafka.bootstrap if self.kafka else ""
        kind = "external broker" if self.kafka and self.kafka.external else \
            f"librdkafka mock cluster, {opts.kafka_brokers} broker(s)"
        lines = [
            "",
            "Latchkey local stack is up",
            f"  API / issuer  {self.url}",
            f"  Storage       {storage}",
            f"  Kafka         {kafka} ({kind}); topics {', '.join(all_topics(opts.topic_prefix))}",
        ]
        for index, (name, value) in enumerate(self.credentials.items()):
            lines.append(f"  {'Seeded' if index == 0 else '':<13} {name}: {value}")
        lines += ["  Routes"] + [f"    {row}" for row in route_table()]
        state_arg = "" if self.state_dir == DEFAULT_STATE_DIR.resolve() else f" --state-dir {state}"
        lines += [
            "",
            "Try:",
            f"  curl -s {self.url}/.well-known/openid-configuration",
            f"  .venv/bin/python -m devstack consume{state_arg}    # events as JSON lines (Ctrl-C to stop)",
            f"  kcat -b {kafka} -C -t {topic_name('oauthToken', opts.topic_prefix)}",
        ]
        if opts.store == "dynamodb":
            lines.append(f"  .venv/bin/python -m devstack emit-test-event{state_arg}    # a test event via the outbox")
        lines += [f"  (settings for other tools: {state}/{STACK_ENV})", "", "Ctrl-C stops everything.", ""]
        return "\n".join(lines)

    # -- stop --------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop_rotation.set()
        if self._rotation is not None:
            self._rotation.join(5)
            self._rotation = None
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None
        if self.relay is not None:
            self.relay.stop()
            self.relay = None
        if self.kafka is not None:
            # Drop the relay's cached producer, which would otherwise keep reconnecting to a stopped cluster.
            if "latchkey_kafka" in sys.modules:
                sys.modules["latchkey_kafka"].close_publishers()
            self.kafka.stop()
            self.kafka = None
        if self.dynamodb is not None:
            self.dynamodb.stop()
            self.dynamodb = None
        (self.state_dir / STACK_ENV).unlink(missing_ok=True)
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        if self._started:
            from latchkey import services

            services.reset()
        self._started = False

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(options: Options) -> int:
    """``python -m devstack up``: start, print the banner, wait for Ctrl-C or SIGTERM, stop."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stopping.is_set():  # a second Ctrl-C: give up on a clean shutdown
            raise KeyboardInterrupt
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = Stack(options)
    try:
        try:
            stack.start()
        except StackError as exc:
            print(f"devstack: {exc}", file=sys.stderr)
            return 1
        except (DynamoDBLocalError, KafkaUnavailable) as exc:
            print(f"devstack: {exc}", file=sys.stderr)
            return 1
        if stopping.is_set():
            return 0
        print(stack.banner(), flush=True)
        while not stopping.wait(1.0):
            pass
        print("devstack: stopping", file=sys.stderr, flush=True)
        return 0
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
