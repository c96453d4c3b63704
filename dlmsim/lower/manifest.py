"""The manifest of a lowered program: JSON tying it to its arch, workload and prediction."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, ValidationError

from dlmsim.config import read_json, validation_message, write_atomic
from dlmsim.errors import InputError

MANIFEST_VERSION = 1
REQUIRED = ("manifest_version", "arch", "workload", "program", "hls", "numerics", "prediction")


class _Part(BaseModel):
    """A manifest section: the keys calibration reads are checked, the rest kept as is."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)


class _Arch(_Part):
    name: str
    design_hash: str
    source: str | None = None


class _Program(_Part):
    top: str = Field(min_length=1)


class _Hls(_Part):
    part: str = Field(min_length=1)
    device: str | None = None
    clock_mhz: PositiveFloat | None = None


class _Prediction(_Part):
    cycles: NonNegativeFloat
    clock_mhz: PositiveFloat
    resources: dict[str, NonNegativeFloat]


class _Manifest(_Part):
    manifest_version: int
    arch: _Arch
    workload: dict
    program: _Program
    hls: _Hls
    numerics: dict
    prediction: _Prediction


def write_manifest(path: str | Path, manifest: dict) -> None:
    write_atomic(path, json.dumps(manifest, indent=1, sort_keys=False) + "\n")


def read_manifest(path: str | Path) -> dict:
    """A manifest.json (or the one in a directory) as a dict, its sections checked."""
    p = Path(path)
    if p.is_dir():
        p = p / "manifest.json"
    data = read_json(p, "manifest")
    if not isinstance(data, dict):
        raise InputError(f"{p}: not a dlmsim manifest")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise InputError(f"{p}: not a dlmsim manifest (missing {', '.join(missing)})")
    if data["manifest_version"] != MANIFEST_VERSION or isinstance(data["manifest_version"], bool):
        raise InputError(f"{p}: manifest_version {data['manifest_version']} is not "
                         f"{MANIFEST_VERSION}")
    try:
        _Manifest.model_validate(data)
    except ValidationError as e:
        raise InputError(validation_message(e, str(p))) from None
    return data


def find_manifest(report: str | Path) -> Path | None:
    """The manifest.json of the lowered directory a report (or directory) lies in."""
    p = Path(report).resolve()
    for d in [p, *p.parents] if p.is_dir() else list(p.parents):
        cand = d / "manifest.json"
        if cand.is_file():
            return cand
    return None
