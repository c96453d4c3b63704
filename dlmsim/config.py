"""Loading YAML configs: bundled-name resolution, dotted overrides, one-line errors.

Shared by the arch, workload and sweep configs. Schemas are pydantic models (frozen, extra
keys forbidden); this module turns their validation errors into one line naming the key.
"""

from __future__ import annotations

import ctypes
import difflib
import hashlib
import json
import math
import os
import re
import socket
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from dlmsim.errors import InputError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for every config schema: immutable, unknown keys are errors, numbers are numbers.

    Strict mode: `true` is not 1 and "8" is not 8 (an int field takes only an int, a float
    field an int or a float); inf and NaN are not numbers a config can hold.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _not_bool(v: Any) -> Any:
    if isinstance(v, bool):  # True == 1 in Python, so Literal[1] alone would take it
        raise ValueError(f"expected the number 1, got {str(v).lower()}")  # noqa: TRY004
    return v


# The `version:` key of every config file.
Version = Annotated[Literal[1], BeforeValidator(_not_bool)]

# Limits of what a config may hold (see `check_plain`): ints beyond 2^53 are not exact as
# floats, which the cost model computes in; deeper nesting than this is no config of ours.
MAX_INT = 2**53
MAX_DEPTH = 64


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
    if p.suffix in (".yaml", ".yml", ".json", ".onnx") or os.sep in str(name_or_path):
        raise InputError(f"{label} file not found: {name_or_path}")
    known = bundled_names(kind)
    near = difflib.get_close_matches(str(name_or_path), known, n=1)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    raise InputError(f"unknown {label} '{name_or_path}'{hint}; known: {', '.join(known)}")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The safe loader (LibYAML's when present: trace files of big models have thousands of
    ops), reading `1e3` and `1e-5` as numbers as YAML 1.2 does (YAML 1.1 wants `1.0e3`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?([0-9][0-9_]*(\.[0-9_]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"))


def read_text(path: str | os.PathLike, what: str = "") -> str:
    """A text file's contents; unreadable or not UTF-8 text is an InputError naming it."""
    label = f"{what} {path}" if what else str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {label}: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{label} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
                         f"{e.start}); is it a binary file?") from None


def check_plain(data: Any, source: str, prefix: str = "") -> None:
    """Every number finite, normal and at most 2^53 in magnitude; nesting at most MAX_DEPTH.

    Applied to everything read from a config or JSON file and to CLI overrides, so no
    schema needs to think of inf, NaN, denormals (1e-310) or 10^100. Iterative, so deep
    nesting cannot exhaust the stack here.
    """
    stack = [(prefix, data, 0)]
    while stack:
        key, v, depth = stack.pop()
        where = f"{source}: {key}" if key else source
        if depth > MAX_DEPTH:
            raise InputError(f"{source}: {key[:40]}...: nested deeper than {MAX_DEPTH} levels")
        if isinstance(v, bool) or v is None or isinstance(v, str):
            continue
        if isinstance(v, float):
            if not math.isfinite(v):
                raise InputError(f"{where}: {v} is not a finite number")
            if v != 0 and abs(v) < sys.float_info.min:
                raise InputError(f"{where}: {v:g} is a denormal number (too small to use)")
            if abs(v) > MAX_INT:
                raise InputError(f"{where}: {v:g} is too large (limit 2^53)")
        elif isinstance(v, int):
            if abs(v) > MAX_INT:
                raise InputError(f"{where}: {_short_int(v)} is too large (limit 2^53)")
        elif isinstance(v, dict):
            stack.extend((f"{key}.{k}" if key else str(k), x, depth + 1) for k, x in v.items())
        elif isinstance(v, list | tuple):
            stack.extend((f"{key}.{i}" if key else str(i), x, depth + 1)
                         for i, x in enumerate(v))


def _short_int(v: int) -> str:
    return str(v) if v.bit_length() <= 80 else f"an integer of {v.bit_length()} bits"


def read_yaml(path: Path) -> dict:
    text = read_text(path)
    try:
        data = yaml.load(text, Loader=_Loader)
    except RecursionError:
        raise InputError(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError:
        try:  # the pure-Python loader words its errors the same on every machine
            yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise InputError(f"malformed YAML in {path}{where}: {problem}") from None
        except RecursionError:
            raise InputError(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
        raise InputError(f"malformed YAML in {path}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of keys at the top level")
    check_plain(data, str(path))
    return data


def read_json(path: str | os.PathLike, what: str = "") -> Any:
    """A JSON file, checked like a config (finite numbers, bounded nesting)."""
    text = read_text(path, what)
    label = f"{what} {path}" if what else str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{label}: not JSON (line {e.lineno}: {e.msg})") from None
    except RecursionError:
        raise InputError(f"{label}: nested deeper than {MAX_DEPTH} levels") from None
    check_plain(data, label)
    return data


def parse_value(text: str) -> Any:
    """A CLI override value: YAML scalar/list syntax (64, 1.5, true, [os, ws], fp32)."""
    try:
        return yaml.load(text, Loader=_Loader)
    except RecursionError:
        raise InputError(f"value nested deeper than {MAX_DEPTH} levels: {text[:40]}") from None
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


def parse_sets(pairs: list[str] | None, flag: str = "--set") -> dict[str, Any]:
    """`key=value` overrides of a CLI flag -> {key: value}; values checked like a config's."""
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise InputError(f"{flag} expects dotted.key=value, got '{p}'")
        k, v = (x.strip() for x in p.split("=", 1))
        if not k:
            raise InputError(f"{flag} '{p}': the key before '=' is empty")
        out[k] = parse_value(v)
        check_plain(out[k], f"{flag} {k}")
    return out


def validation_message(e: ValidationError, source: str, tags: tuple[str, ...] = (),
                       nested_tags: tuple[str, ...] = ()) -> str:
    """The first pydantic error as one line: 'source: key.path: message'. A discriminated
    union's tag is not a key of the file: `tags` at the top, `nested_tags` in a mapping of
    such unions (`units.qkv.array.rows` is `units.qkv.rows`)."""
    err = e.errors()[0]
    parts = [str(x) for x in err["loc"] if not str(x).startswith("function-")]
    if parts and parts[0] in tags:
        parts = parts[1:]
    parts = parts[:2] + [p for p in parts[2:3] if p not in nested_tags] + parts[3:]
    loc = ".".join(parts)
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"].endswith(("_type", "_parsing")) or err["type"] == "literal_error":
        msg = f"{msg} (got {shown(err.get('input'))})"
    extra = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"{source}: {loc}: {msg}{extra}" if loc else f"{source}: {msg}{extra}"


def shown(v: Any) -> str:
    """A bad value as the user wrote it: true, 'abc', a list, a mapping."""
    if isinstance(v, bool) or v is None:
        return {True: "true", False: "false", None: "null"}[v]
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list | tuple):
        return "a list"
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 40 else text[:37] + "..."


def validate(schema: type[M], data: dict, source: str, nested_tags: tuple[str, ...] = ()) -> M:
    try:
        return schema.model_validate(data)
    except ValidationError as e:
        raise InputError(validation_message(e, source, nested_tags=nested_tags)) from None


def config_hash(data: Any, n: int = 10) -> str:
    """Short stable hash of a resolved config (the run id), independent of key order."""
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _temp_prefix(path: Path) -> str:
    """'.NAME@host@pid@': temp files and dirs name their writer, so a later run can tell
    a dead run's leftovers (`dlmsim.explore.workers.clean_stale_temps`) from a live
    writer's."""
    return f".{path.name}@{socket.gethostname()}@{os.getpid()}@"


def _cannot_write(path, e: OSError) -> InputError:
    return InputError(f"cannot write {path}: {e.strerror or e}")


def _make_dir(d: Path, target: Path) -> None:
    """mkdir -p, saying which file stands where a directory must go."""
    try:
        d.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (d, *d.parents) if p.exists() and not p.is_dir()), d)
        raise InputError(f"cannot write {target}: {blocker} is a file, not a "
                         "directory") from None


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write a file so a reader never sees it half-written (temp file + rename).

    A path that cannot be written (read-only, a directory, under a file) is an InputError.
    """
    path = Path(path)
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        _make_dir(path.parent, path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    except OSError as e:
        raise _cannot_write(path, e) from None
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, mode) as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot_write(path, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(path: str | os.PathLike, is_dir: bool = False) -> Path:
    """Make sure `path` (a file, or with is_dir a directory) can be written, before the work
    whose result goes there: creates the directory it goes in and writes a probe file
    there (a permission bit says nothing to root or on a read-only mount)."""
    path = Path(path)
    d = path if is_dir else path.parent
    if not is_dir and path.is_dir():
        raise InputError(f"cannot write {path}: it is a directory")
    if is_dir and path.exists() and not path.is_dir():
        raise InputError(f"cannot write into {path}: it is a file, not a directory")
    try:
        _make_dir(d, path)
        fd, probe = tempfile.mkstemp(dir=d, prefix=".dlmsim-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise _cannot_write(path, e) from None
    return path


def temp_dir_for(path: str | os.PathLike) -> Path:
    """A fresh temp directory beside `path`, to fill and then `replace_dir` into place."""
    path = Path(path)
    try:
        _make_dir(path.parent, path)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path),
                                    suffix=".tmp"))
        os.chmod(tmp, 0o777 & ~_UMASK)
    except OSError as e:
        raise _cannot_write(path, e) from None
    return tmp


def replace_dir(tmp: Path, dest: Path) -> None:
    """Put the directory `tmp` at `dest` so a reader sees the old or the new one whole.

    Linux swaps the two in one step (renameat2 RENAME_EXCHANGE) and removes the old one;
    elsewhere (or on a file system without it) the old one is renamed away first, so a kill
    between the two renames leaves no `dest` and a stale temp dir that the next run cleans.
    """
    import shutil

    try:
        os.rename(tmp, dest)  # no old one (or an empty one)
        return
    except OSError:
        pass
    libc = ctypes.CDLL(None, use_errno=True)
    swap = getattr(libc, "renameat2", None)
    if swap is not None and swap(-100, os.fsencode(tmp), -100, os.fsencode(dest), 2) == 0:
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old directory
        return
    old = Path(f"{tmp}.old.tmp")
    os.rename(dest, old)
    os.rename(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
