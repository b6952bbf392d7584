"""Running Lambda handlers in this process: loading a function's module from its file (reloaded when the
file changes), a Lambda-like context object, and one invocation at a time per function (like a single
warm Lambda instance, which also keeps Powertools' per-invocation state such as ``app.current_event``
from being shared between concurrent requests).
"""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from . import template

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
DEFAULT_MEMORY_MB = 128  # Lambda's defaults when neither the function nor Globals set them
DEFAULT_TIMEOUT_S = 3


def function_limits(function: str, doc: dict[str, Any] | None = None) -> tuple[int, int]:
    """(MemorySize in MB, Timeout in seconds) of a template function, Globals applied."""
    doc = doc or template.load()
    globals_ = (doc.get("Globals") or {}).get("Function") or {}
    props = (doc.get("Resources", {}).get(function) or {}).get("Properties") or {}
    memory = props.get("MemorySize", globals_.get("MemorySize", DEFAULT_MEMORY_MB))
    timeout = props.get("Timeout", globals_.get("Timeout", DEFAULT_TIMEOUT_S))
    return (memory if isinstance(memory, int) else DEFAULT_MEMORY_MB,
            timeout if isinstance(timeout, int) else DEFAULT_TIMEOUT_S)


@dataclass
class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers use."""

    function_name: str
    memory_limit_in_mb: int = DEFAULT_MEMORY_MB
    timeout_s: int = DEFAULT_TIMEOUT_S
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return time.strftime("%Y/%m/%d/[$LATEST]") + "devstack"

    @property
    def identity(self) -> None:
        return None

    @property
    def client_context(self) -> None:
        return None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


def _module_name(function: str, path: Path) -> str:
    return "devstack_fn_" + re.sub(r"\W", "_", function) + "_" + re.sub(r"\W", "_", path.stem)


class LoadedFunction:
    """One function's handler, loaded from ``module_file`` and re-loaded when the file's mtime changes."""

    def __init__(self, function: str, module_file: Path, handler_name: str = "handler", *,
                 memory_mb: int = DEFAULT_MEMORY_MB, timeout_s: int = DEFAULT_TIMEOUT_S) -> None:
        self.function = function
        self.module_file = Path(module_file)
        self.handler_name = handler_name
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.module: ModuleType | None = None
        self._mtime: int | None = None
        self._load_lock = threading.Lock()
        self._invoke_lock = threading.Lock()  # one invocation at a time, like one Lambda instance

    @classmethod
    def from_template(cls, function: str, module_file: Path, handler_name: str,
                      doc: dict[str, Any] | None = None) -> LoadedFunction:
        memory, timeout = function_limits(function, doc)
        return cls(function, module_file, handler_name, memory_mb=memory, timeout_s=timeout)

    def _load(self) -> ModuleType:
        with self._load_lock:
            mtime = self.module_file.stat().st_mtime_ns
            if self.module is not None and mtime == self._mtime:
                return self.module
            name = _module_name(self.function, self.module_file)
            spec = importlib.util.spec_from_file_location(name, self.module_file)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {self.module_file}")
            module = importlib.util.module_from_spec(spec)
            # Like Lambda, the function's code directory is importable while its module loads.
            code_dir = str(self.module_file.parent)
            sys.path.insert(0, code_dir)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
            finally:
                if code_dir in sys.path:
                    sys.path.remove(code_dir)
            if self.module is not None:
                print(f"devstack: reloaded {self.function} ({self.module_file})", file=sys.stderr, flush=True)
            self.module, self._mtime = module, mtime
            return module

    def handler(self) -> Any:
        module = self._load()
        found = getattr(module, self.handler_name, None)
        if not callable(found):
            raise AttributeError(f"{self.module_file} has no callable {self.handler_name!r}")
        return found

    def context(self) -> LambdaContext:
        return LambdaContext(function_name=self.function, memory_limit_in_mb=self.memory_mb,
                             timeout_s=self.timeout_s)

    def invoke(self, event: Any, context: LambdaContext | None = None) -> Any:
        handler = self.handler()
        context = context or self.context()
        with self._invoke_lock:
            context.started = time.monotonic()
            result = handler(event, context)
        elapsed = time.monotonic() - context.started
        if elapsed > self.timeout_s:
            print(f"devstack: {self.function} took {elapsed:.1f}s, over its {self.timeout_s}s Lambda timeout",
                  file=sys.stderr, flush=True)
        return result
