"""Deployment package sizes: every layer and function as ``sam build`` produces them.

``sam build`` (the SAM CLI in ``.dev/sam``, installed with ``make .dev/sam/.installed`` when missing) builds
into a temporary directory; each artifact's unzipped size is the sum of its files' sizes and its zipped
size that of a ``ZIP_DEFLATED`` archive of the directory (what ``sam package`` uploads). Lambda's limits:
50 MB zipped for a direct upload, 250 MB unzipped for a function and all its layers together (MB = MiB:
Lambda counts 52,428,800 and 262,144,000 bytes).

``python -m bench.packages`` prints the report (``--build-dir DIR`` measures an existing build, e.g.
``.aws-sam/build`` from ``make sam-build``, instead of building).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAM = ROOT / ".dev" / "sam" / "bin" / "sam"
MIB = 1024 * 1024
ZIPPED_LIMIT_MB = 50.0
UNZIPPED_LIMIT_MB = 250.0
LARGEST = 8  # how many of a layer's biggest top-level entries the report names


def ensure_sam() -> Path:
    """The SAM CLI, installed into .dev/sam by the Makefile target when it is not there."""
    if not (SAM.is_file() and os.access(SAM, os.X_OK)):
        subprocess.run(["make", ".dev/sam/.installed"], cwd=ROOT, check=True)
    return SAM


def sam_build(build_dir: Path) -> float:
    """``sam build --no-cached --parallel`` into ``build_dir`` (as tests/integration/test_sam.py does);
    returns the seconds it took. Raises with SAM's output when the build fails."""
    sam = ensure_sam()
    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    env.pop("PYTHONPATH", None)  # our interpreter's path must not leak into SAM's or pip's
    env.pop("VIRTUAL_ENV", None)
    start = time.perf_counter()
    done = subprocess.run([str(sam), "build", "--build-dir", str(build_dir), "--no-cached", "--parallel"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sam build failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-6000:]}")
    return time.perf_counter() - start


def unzipped_size(path: Path) -> tuple[int, int]:
    """(files, bytes) of the regular files under ``path``: what Lambda counts once the zip is unpacked."""
    files = size = 0
    for folder, _, names in os.walk(path):
        for name in names:
            info = os.lstat(os.path.join(folder, name))
            files += 1
            size += info.st_size
    return files, size


def zipped_size(path: Path, scratch: Path) -> int:
    """Bytes of a ZIP_DEFLATED archive of ``path``'s contents (written to ``scratch`` and removed)."""
    archive = scratch / f"{path.name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for folder, dirs, names in os.walk(path):
            dirs.sort()
            for name in sorted(names):
                full = Path(folder, name)
                out.write(full, full.relative_to(path).as_posix())
    size = archive.stat().st_size
    archive.unlink()
    return size


def layer_entries(layer: Path) -> list[dict[str, Any]]:
    """The top-level packages of a Python layer (under python/), *.dist-info merged in, biggest first."""
    base = layer / "python" if (layer / "python").is_dir() else layer
    sizes: dict[str, int] = {}
    for entry in base.iterdir():
        name = entry.name.split("-", 1)[0].lower() if entry.name.endswith(".dist-info") else entry.name
        name = name.removesuffix(".py")
        size = unzipped_size(entry)[1] if entry.is_dir() else entry.lstat().st_size
        sizes[name.lower()] = sizes.get(name.lower(), 0) + size
    ordered = sorted(sizes.items(), key=lambda item: item[1], reverse=True)
    return [{"name": name, "mb": size / MIB} for name, size in ordered]


def _layers_of(resource: dict[str, Any], globals_layers: list[Any]) -> list[str]:
    """A function's layers: Globals' plus its own (SAM adds lists from Globals), as logical ids."""
    found = []
    for layer in [*globals_layers, *(resource.get("Properties", {}).get("Layers") or [])]:
        name = layer.get("Ref") if isinstance(layer, dict) else layer
        if isinstance(name, str) and name not in found:
            found.append(name)
    return found


def measure(build_dir: Path) -> dict[str, Any]:
    """Sizes of every layer and function under a ``sam build`` output directory."""
    from devstack import template

    doc = template.load()
    resources = doc["Resources"]
    globals_layers = ((doc.get("Globals") or {}).get("Function") or {}).get("Layers") or []
    with tempfile.TemporaryDirectory(prefix="latchkey-packages-") as tmp:
        scratch = Path(tmp)

        def artifact(logical_id: str) -> dict[str, Any]:
            path = build_dir / logical_id
            if not path.is_dir():
                raise FileNotFoundError(f"{path} is missing: not a complete sam build output")
            files, size = unzipped_size(path)
            return {"files": files, "unzipped_mb": size / MIB, "zipped_mb": zipped_size(path, scratch) / MIB}

        layers, entries = {}, {}
        for name, resource in resources.items():
            if resource["Type"] == "AWS::Serverless::LayerVersion":
                entries[name] = layer_entries(build_dir / name)
                layers[name] = {**artifact(name), "largest": entries[name][:LARGEST]}
        functions = {}
        for name, resource in resources.items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            own = artifact(name)
            attached = _layers_of(resource, globals_layers)
            functions[name] = {**own, "code_uri": resource["Properties"]["CodeUri"], "layers": attached,
                               "total_unzipped_mb": own["unzipped_mb"] + sum(layers[x]["unzipped_mb"]
                                                                             for x in attached)}
    # Packages more than one layer ships: a function with both layers counts them twice.
    shipped: dict[str, list[tuple[str, float]]] = {}
    for layer, found in entries.items():
        for entry in found:
            shipped.setdefault(entry["name"], []).append((layer, entry["mb"]))
    duplicates = sorted(({"name": name, "layers": [layer for layer, _ in where],
                          "mb": min(size for _, size in where)} for name, where in shipped.items() if len(where) > 1),
                        key=lambda d: d["mb"], reverse=True)
    return {"layers": layers, "functions": functions, "duplicates": duplicates}


def run(*, short: bool, build_dir: Path | None = None) -> dict[str, Any]:
    """Build with SAM into a temporary directory (or measure ``build_dir``) and check Lambda's limits.

    ``short`` changes nothing (a package's size is one measurement); it is accepted like the other bench
    modules' ``run``."""
    del short
    started = time.perf_counter()
    if build_dir is not None:
        data = measure(Path(build_dir))
        data["build"] = {"dir": str(build_dir), "seconds": None}
    else:
        with tempfile.TemporaryDirectory(prefix="latchkey-sam-build-") as tmp:
            seconds = sam_build(Path(tmp) / "build")
            data = measure(Path(tmp) / "build")
        data["build"] = {"dir": None, "seconds": round(seconds, 1)}

    artifacts = {**{f"{n} (layer)": v for n, v in data["layers"].items()}, **data["functions"]}
    worst_zip = max(artifacts, key=lambda n: artifacts[n]["zipped_mb"])
    worst_total = max(data["functions"], key=lambda n: data["functions"][n]["total_unzipped_mb"])
    over_zip = sorted(n for n, a in artifacts.items() if a["zipped_mb"] > ZIPPED_LIMIT_MB)
    over_total = sorted(n for n, f in data["functions"].items() if f["total_unzipped_mb"] > UNZIPPED_LIMIT_MB)
    data["targets"] = [
        {"target": f"every function with its layers, unzipped <= {UNZIPPED_LIMIT_MB:.0f} MB", "pass": not over_total,
         "figure": round(data["functions"][worst_total]["total_unzipped_mb"], 2), "unit": "MB",
         "worst": worst_total, "over": over_total},
        {"target": f"every layer and function zip <= {ZIPPED_LIMIT_MB:.0f} MB", "pass": not over_zip,
         "figure": round(artifacts[worst_zip]["zipped_mb"], 2), "unit": "MB", "worst": worst_zip,
         "over": over_zip},
    ]
    data["seconds"] = round(time.perf_counter() - started, 1)
    return data


def _mb(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def report_lines(data: dict[str, Any]) -> list[str]:
    """The "Package size" section of ``bench/report.md``."""
    build = data["build"]
    how = (f"`sam build --no-cached --parallel` into a temporary directory ({build['seconds']:.0f} s)"
           if build["dir"] is None else f"the existing build in `{build['dir']}`")
    lines = ["## Package size", "",
             f"Measured on {how}. Unzipped: the sum of the artifact's file sizes; zipped: a `ZIP_DEFLATED` "
             f"archive of it. MB = MiB (Lambda's limits: {ZIPPED_LIMIT_MB:.0f} MB zipped per direct upload, "
             f"{UNZIPPED_LIMIT_MB:.0f} MB unzipped for a function and all its layers).", "",
             "A function's own figures are its code only (the thin handler); the function + layers column, its "
             "code plus every layer attached to it, is what counts against the 250 MB limit.", "",
             "| artifact | files | unzipped | zipped | layers | function + layers unzipped (MB) |",
             "| --- | ---: | ---: | ---: | --- | ---: |"]
    for name, layer in data["layers"].items():
        lines.append(f"| {name} (layer) | {layer['files']} | {_mb(layer['unzipped_mb'])} MB | "
                     f"{_mb(layer['zipped_mb'])} MB | - | - |")
    ordered = sorted(data["functions"].items(), key=lambda item: (-round(item[1]["total_unzipped_mb"], 1), item[0]))
    for name, function in ordered:
        lines.append(f"| {name} (`{function['code_uri']}`) | {function['files']} | "
                     f"{function['unzipped_mb'] * 1024:.1f} KB | {function['zipped_mb'] * 1024:.1f} KB | "
                     f"{', '.join(function['layers']) or '-'} | {_mb(function['total_unzipped_mb'])} |")
    lines.append("")
    for name, layer in data["layers"].items():
        biggest = ", ".join(f"{entry['name']} {_mb(entry['mb'])}" for entry in layer["largest"])
        lines.append(f"- Largest in {name} (unzipped MB): {biggest}.")
    duplicates = data.get("duplicates") or []
    if duplicates:
        total = sum(d["mb"] for d in duplicates)
        names = ", ".join(f"{d['name']} {_mb(d['mb'])}" for d in duplicates[:LARGEST])
        lines.append(f"- In more than one layer ({_mb(total)} MB, counted once per layer for a function that has "
                     f"them all): {names}{', ...' if len(duplicates) > LARGEST else ''}.")
    lines.append("")
    for target in data["targets"]:
        extra = f"; largest: {target['worst']}" + (f"; over: {', '.join(target['over'])}" if target["over"] else "")
        lines.append(f"**{'PASS' if target['pass'] else 'FAIL'}**: {target['target']} "
                     f"({target['figure']:.2f} {target['unit']}{extra}).")
        lines.append("")
    return lines


if __name__ == "__main__":
    arguments = sys.argv[1:]
    given = Path(arguments[arguments.index("--build-dir") + 1]) if "--build-dir" in arguments else None
    print("\n".join(report_lines(run(short=True, build_dir=given))))
