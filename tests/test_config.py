"""Reading configs: bytes that are not text, nesting, numbers that are not numbers, outputs
that cannot be written. Every case is one InputError naming the file and the key."""

from __future__ import annotations

import os
import re

import pytest

from dlmsim.config import (
    MAX_DEPTH,
    check_plain,
    check_writable,
    parse_sets,
    read_json,
    read_yaml,
    write_atomic,
)
from dlmsim.errors import InputError


def _raises(match: str):
    return pytest.raises(InputError, match=re.escape(match))


def test_binary_file_is_named_not_decoded(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_bytes(b"version: 1\nname: \xff\xfe\x00\x01\n")
    with _raises(f"{p} is not UTF-8 text (byte 0xff at offset 17)"):
        read_yaml(p)


def test_deep_nesting_is_refused_before_the_stack_runs_out(tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with _raises(f"{flow}: nested deeper than {MAX_DEPTH} levels"):
        read_yaml(flow)
    shallow = tmp_path / "ok.yaml"  # just past the limit, in block style: the walk says it
    shallow.write_text("a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n")
    with _raises("nested deeper than"):
        read_yaml(shallow)
    js = tmp_path / "deep.json"
    js.write_text("[" * 100000 + "]" * 100000)
    with _raises("nested deeper than"):
        read_json(js)


@pytest.mark.parametrize(("text", "message"), [
    ("x: .inf", "x: inf is not a finite number"),
    ("x: -.inf", "x: -inf is not a finite number"),
    ("x: .nan", "x: nan is not a finite number"),
    ("x: {y: [1, 1.0e-310]}", "x.y.1: 1e-310 is a denormal number"),
    ("x: 1e-310", "x: 1e-310 is a denormal number"),  # YAML 1.2 exponent form is a number
    ("x: 9007199254740993", "x: 9007199254740993 is too large (limit 2^53)"),
    ("x: 1" + "0" * 100, "x: an integer of 333 bits is too large"),
    ("x: 1.0e+300", "x: 1e+300 is too large"),
])
def test_numbers_must_be_finite_normal_and_exact(tmp_path, text, message):
    p = tmp_path / "n.yaml"
    p.write_text(text + "\n")
    with _raises(f"{p}: {message}"):
        read_yaml(p)


def test_exponent_form_reads_as_a_number(tmp_path):
    p = tmp_path / "e.yaml"
    p.write_text("a: 1e3\nb: -2E-2\nc: 1_000\nd: '1e3'\ne: 2.0e1\n")
    assert read_yaml(p) == {"a": 1000.0, "b": -0.02, "c": 1000, "d": "1e3", "e": 20.0}


def test_json_reads_like_yaml(tmp_path):
    p = tmp_path / "s.json"
    p.write_text('{"a": NaN}')
    with _raises(f"{p}: a: nan is not a finite number"):
        read_json(p)
    p.write_text("{oops")
    with _raises(f"{p}: not JSON (line 1: "):
        read_json(p)


def test_check_plain_leaves_sane_data_alone():
    check_plain({"a": [1, 2.5, -3, 0.0, True, None, "x"], "b": {"c": 2**53}}, "src")


def test_cli_overrides_are_checked_like_files():
    assert parse_sets(["a.b=1e3", "c=[os, ws]", "d = x "]) == {"a.b": 1000.0, "c": ["os", "ws"],
                                                             "d": "x"}
    with _raises("--set a: inf is not a finite number"):
        parse_sets(["a=.inf"])
    with _raises("--workload-set expects dotted.key=value, got 'batch'"):
        parse_sets(["batch"], "--workload-set")
    with _raises("--set '=3': the key before '=' is empty"):
        parse_sets(["=3"])
    with _raises(f"...: nested deeper than {MAX_DEPTH} levels"):
        parse_sets(["a=" + "[" * 100 + "]" * 100])


def test_unwritable_outputs_are_one_line(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with _raises(f"cannot write {f / 'out.csv'}: {f} is a file, not a directory"):
        write_atomic(f / "out.csv", "data")
    with _raises(f"cannot write {tmp_path}: Is a directory"):
        write_atomic(tmp_path, "data")
    with _raises(f"cannot write into {f}: it is a file, not a directory"):
        check_writable(f, is_dir=True)
    with _raises(f"cannot write {tmp_path}: it is a directory"):
        check_writable(tmp_path)
    with _raises("cannot write /proc/dlmsim-test/x.png"):  # a file system nobody writes to
        check_writable("/proc/dlmsim-test/x.png")
    out = check_writable(tmp_path / "new" / "dir", is_dir=True)
    assert out.is_dir() and os.listdir(out) == []  # the probe file is gone
