"""The manifest of a lowered program: JSON tying it to its arch, workload and prediction."""

from __future__ import annotations

import json
from pathlib import Path

from dlmsim.config import write_atomic
from dlmsim.errors import InputError

MANIFEST_VERSION = 1
REQUIRED = ("manifest_version", "arch", "workload", "program", "hls", "numerics", "prediction")


def write_manifest(path: str | Path, manifest: dict) -> None:
    write_atomic(path, json.dumps(manifest, indent=1, sort_keys=False) + "\n")


def read_manifest(path: str | Path) -> dict:
    p = Path(path)
    if p.is_dir():
        p = p / "manifest.json"
    try:
        data = json.loads(p.read_text())
    except OSError as e:
        raise InputError(f"cannot read manifest {p}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: not a JSON manifest (line {e.lineno}: {e.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"{p}: not a dlmsim manifest")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise InputError(f"{p}: not a dlmsim manifest (missing {', '.join(missing)})")
    if data["manifest_version"] != MANIFEST_VERSION:
        raise InputError(f"{p}: manifest_version {data['manifest_version']} is not "
                         f"{MANIFEST_VERSION}")
    return data


def find_manifest(report: str | Path) -> Path | None:
    """The manifest.json of the lowered directory a report (or directory) lies in."""
    p = Path(report).resolve()
    for d in [p, *p.parents] if p.is_dir() else list(p.parents):
        cand = d / "manifest.json"
        if cand.is_file():
            return cand
    return None
