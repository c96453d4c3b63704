"""Loading YAML configs: bundled-name resolution, dotted overrides, one-line errors.

Shared by the arch, workload and sweep configs. Schemas are pydantic models (frozen, extra
keys forbidden); this module turns their validation errors into one line naming the key.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from dlmsim.errors import InputError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for every config schema: immutable, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def bundled_dir(kind: str) -> Path:
    """Directory of the bundled configs of a kind ('arch', 'workloads', 'sweeps').

    They live at the top of the checkout (dlmsim is installed editable from it); the
    environment variable DLMSIM_HOME points at another checkout or copy of those folders.
    """
    home = os.environ.get("DLMSIM_HOME")
    root = Path(home) if home else Path(__file__).resolve().parent.parent
    return root / kind


def bundled_names(kind: str, suffix: str = ".yaml") -> list[str]:
    d = bundled_dir(kind)
    return sorted(p.name[: -len(suffix)] for p in d.glob(f"*{suffix}")) if d.is_dir() else []


def resolve(kind: str, name_or_path: str | os.PathLike, label: str) -> Path:
    """A path as given, or a bundled config by name; an InputError listing names otherwise."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    cand = bundled_dir(kind) / f"{name_or_path}.yaml"
    if cand.is_file():
        return cand
    if p.suffix in (".yaml", ".yml", ".json") or os.sep in str(name_or_path):
        raise InputError(f"{label} file not found: {name_or_path}")
    known = bundled_names(kind)
    near = difflib.get_close_matches(str(name_or_path), known, n=1)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    raise InputError(f"unknown {label} '{name_or_path}'{hint}; known: {', '.join(known)}")


def read_yaml(path: Path) -> dict:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    try:
        # LibYAML's loader when present: trace files of big models have thousands of ops.
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        try:  # the pure-Python loader words its errors the same on every machine
            yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise InputError(f"malformed YAML in {path}{where}: {problem}") from None
        raise InputError(f"malformed YAML in {path}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of keys at the top level")
    return data


def parse_value(text: str) -> Any:
    """A CLI override value: YAML scalar/list syntax (64, 1.5, true, [os, ws], fp32)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def set_dotted(data: dict, dotted: str, value: Any, valid: dict | None = None) -> None:
    """Set data['a']['b'] = value for 'a.b', creating nothing the schema does not know.

    `valid` is the same structure (e.g. the defaults) used to name the nearest keys.
    """
    keys = dotted.split(".")
    node = data
    ref = valid if valid is not None else data
    for i, k in enumerate(keys):
        last = i == len(keys) - 1
        if not isinstance(node, dict):
            raise InputError(f"--set {dotted}: '{'.'.join(keys[:i])}' is not a section")
        if isinstance(ref, dict) and k not in ref and k not in node:
            near = difflib.get_close_matches(k, list(ref), n=3)
            hint = f"; nearest: {', '.join('.'.join(keys[:i] + [n]) for n in near)}" if near \
                else f"; valid here: {', '.join(sorted(ref))}"
            raise InputError(f"unknown key '{dotted}'{hint}")
        if last:
            node[k] = value
        else:
            node = node.setdefault(k, {})
            ref = ref.get(k, {}) if isinstance(ref, dict) else {}


def parse_sets(pairs: list[str] | None) -> dict[str, Any]:
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise InputError(f"--set expects dotted.key=value, got '{p}'")
        k, v = p.split("=", 1)
        out[k.strip()] = parse_value(v.strip())
    return out


def validation_message(e: ValidationError, source: str, tags: tuple[str, ...] = ()) -> str:
    """The first pydantic error as one line: 'source: key.path: message'."""
    err = e.errors()[0]
    parts = [str(x) for x in err["loc"] if not str(x).startswith("function-")]
    if parts and parts[0] in tags:  # a discriminated union's tag is not a key of the file
        parts = parts[1:]
    loc = ".".join(parts)
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    extra = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"{source}: {loc}: {msg}{extra}" if loc else f"{source}: {msg}{extra}"


def validate(schema: type[M], data: dict, source: str) -> M:
    try:
        return schema.model_validate(data)
    except ValidationError as e:
        raise InputError(validation_message(e, source)) from None


def config_hash(data: Any, n: int = 10) -> str:
    """Short stable hash of a resolved config (the run id), independent of key order."""
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write a file so a reader never sees it half-written (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
