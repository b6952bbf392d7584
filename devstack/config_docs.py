"""The README's configuration table, generated from :class:`latchkey.config.Settings`.

``python -m devstack config-table`` rewrites the table between the markers in README.md;
``tests/unit/test_config_docs.py`` fails when the README and the model differ.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

from latchkey.config import Settings

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"


def _default(value: object) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    if isinstance(value, tuple):
        return "`" + ",".join(map(str, value)) + "`"
    if value == "":
        return "(empty)"
    return f"`{json.dumps(value) if not isinstance(value, str) else value}`"


def render_table() -> str:
    rows = ["| Variable | Default | Description |", "| --- | --- | --- |"]
    for name, default, description in Settings.describe():
        description = description.replace("|", "\\|")
        rows.append(f"| `{name.upper()}` | {_default(default)} | {description} |")
    return "\n".join(rows)


def readme_with_table(text: str) -> str:
    head, sep, rest = text.partition(START)
    if not sep or END not in rest:
        raise ValueError(f"README.md lacks the {START} / {END} markers")
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{render_table()}\n{END}{tail}"


def write_readme(path: Path = README) -> bool:
    """Rewrite the table; True when the file changed."""
    text = path.read_text(encoding="utf-8")
    updated = readme_with_table(text)
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return updated != text
