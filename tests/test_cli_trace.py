"""`dlmsim trace`: smoke tests of each output, and bad input -> one line, exit code 1."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import dlmsim_exe
from typer.testing import CliRunner

from dlmsim.cli import app, main
from dlmsim.workloads import load_workload

SMALL = ["--batch", "1", "--seq-len", "8"]
KNOWN = ("diffusion-lm-e2e, diffusion-lm-roc, llada-8b, mdlm-medium, mdlm-small, mdlm-tiny, "
         "sd15-unet, sedd-small")

CHAIN_BROKEN = """\
version: 1
trace: toy
schedule: {steps: 10, forward_passes: 10}
inputs:
  - {name: x, shape: [1, 16, 64]}
ops:
  - name: ffn1
    kind: gemm
    fn: linear
    inputs:
      - {name: x, shape: [1, 16, 64]}
      - {name: w1, shape: [64, 256], role: weight}
    outputs:
      - {name: h, shape: [1, 16, 256]}
  - name: act
    kind: sfu
    fn: gelu
    inputs: [{name: h, shape: [1, 16, 128]}]
    outputs: [{name: y, shape: [1, 16, 128]}]
"""


def invoke(*args: str):
    return CliRunner().invoke(app, ["trace", *args])


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """The console entry point in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["dlmsim", "trace", *args])
    with pytest.raises(SystemExit) as e:
        main()
    cap = capsys.readouterr()
    return e.value.code, cap.out, cap.err


MDLM = "version: 1\nname: m\nfamily: mdlm\n"


# ---- smoke -------------------------------------------------------------------------------


def test_table_output():
    """Table of ops and totals for MDLM small at B 1, L 8: 169.63 M parameters (see
    test_workloads.test_mdlm_small_params), 1.99 GFLOP per forward, 9.72 forward passes."""
    res = invoke("mdlm-small", *SMALL)
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "blocks.11.mlp2" in out and "final.linear" in out
    assert "[8,768]x[768,50258]" in out  # the output head GEMM
    assert "12x [8,64]x[64,8]" in out  # attention scores: B*H = 12 batched products
    for text in ("169.63 M", "1.99 GFLOP", "9.72 passes", "128 steps"):
        assert text in out


def test_csv_output():
    res = invoke("mdlm-tiny", *SMALL, "--format", "csv")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(io.StringIO(res.stdout))
    t = load_workload("mdlm-tiny", batch=1, seq_len=8)
    assert list(df.name) == [o.name for o in t.ops]
    assert df[df.phase == "forward"].flops.sum() == t.flops_per_forward


def test_json_output():
    res = invoke("diffusion-lm-e2e", "-b", "2", "-l", "8", "-t", "200", "-f", "json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    t = load_workload("diffusion-lm-e2e", batch=2, seq_len=8, steps=200)
    assert [r["name"] for r in rows] == [o.name for o in t.ops]
    assert rows[0]["kind"] == t.ops[0].kind


def test_run_options_apply():
    """--steps 10000 --batch 1 --seq-len 1024: about 975 forward passes (975.26, see
    test_workloads.test_mdlm_cache_forward_passes); --no-cache: 10000 + 1 = 10001."""
    res = invoke("mdlm-tiny", "-b", "1", "-l", "1024", "-t", "10000")
    assert res.exit_code == 0 and "975.26 passes" in res.stdout
    res = invoke("mdlm-tiny", *SMALL, "--no-cache", "--precision", "fp32")
    assert res.exit_code == 0 and "129.00 passes" in res.stdout
    assert "precision=fp32" in res.stdout


def test_write_trace_file(tmp_path):
    out = tmp_path / "my.trace.yaml"
    res = invoke("mdlm-tiny", *SMALL, "-o", str(out))
    assert res.exit_code == 0, res.output
    t = load_workload("mdlm-tiny", batch=1, seq_len=8)
    assert res.stderr.strip() == f"wrote {len(t.ops)} ops to {out}"
    assert res.stdout == ""
    # ... and read it back through the CLI.
    res = invoke(str(out), "-f", "csv")
    assert res.exit_code == 0
    assert len(pd.read_csv(io.StringIO(res.stdout))) == len(t.ops)


def test_help():
    res = invoke("--help")
    assert res.exit_code == 0
    for opt in ("--batch", "--seq-len", "--steps", "--cache", "--format", "-o"):
        assert opt in res.stdout


# ---- usage errors (exit code 2) ----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [(), ("mdlm-tiny", "--batch", "1.5"), ("mdlm-tiny", "--batch", "abc"),
     ("mdlm-tiny", "--format", "xml"), ("mdlm-tiny", "--colour")],
)
def test_usage_errors_exit_2(args):
    assert invoke(*args).exit_code == 2


# ---- bad input (exit code 1, one line, no traceback) -------------------------------------


def _bad_cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    """(arguments, the whole expected stderr line without 'error: ')."""
    def cfg(name, text):
        p = tmp_path / name
        p.write_text(text)
        return str(p)

    malformed = cfg("malformed.yaml", MDLM + "model: {hidden: 768, blocks: 2, heads: 12\n"
                    "run: {batch: 1}\n")
    unknown = cfg("unknown.yaml", MDLM + "model: {hidden: 768, blocks: 2, heads: 12, "
                  "hiden: 3}\n")
    zero = cfg("zero.yaml", MDLM + "model: {hidden: 0, blocks: 2, heads: 12}\n")
    frac = cfg("frac.yaml", MDLM + "model: {hidden: 768, blocks: 2.5, heads: 12}\n")
    heads = cfg("heads.yaml", MDLM + "model: {hidden: 768, blocks: 2, heads: 5}\n")
    family = cfg("family.yaml", "version: 1\nname: m\nfamily: gpt\nmodel: {}\n")
    chain = cfg("chain.trace.yaml", CHAIN_BROKEN)
    listing = cfg("list.yaml", "- a\n- b\n")
    return [
        (["mdlm-smal"],
         f"unknown workload 'mdlm-smal' (did you mean 'mdlm-small'?); known: {KNOWN}"),
        (["gpt-2"], f"unknown workload 'gpt-2'; known: {KNOWN}"),
        ([str(tmp_path / "nope.yaml")], f"workload file not found: {tmp_path / 'nope.yaml'}"),
        ([malformed], (f"malformed YAML in {malformed} line 5: expected ',' or '}}', but got "
                      "':'")),
        ([listing], f"{listing}: expected a mapping of keys at the top level"),
        ([unknown], f"{unknown}: model.hiden: unknown key"),
        ([zero], f"{zero}: model.hidden: Input should be greater than 0"),
        ([frac], f"{frac}: model.blocks: Input should be a valid integer (got 2.5)"),
        ([heads], f"{heads}: model: heads 5 does not divide hidden 768"),
        ([family], (f"{family}: Input tag 'gpt' found using 'family' does not match any of the "
                   "expected tags: 'mdlm', 'sedd', 'diffusion_lm', 'llada', 'sd_unet'")),
        (["mdlm-tiny", "--batch", "0"],
         "mdlm-tiny.yaml: run.batch: Input should be greater than 0"),
        (["mdlm-tiny", "--seq-len", "-8"],
         "mdlm-tiny.yaml: run.seq_len: Input should be greater than 0"),
        (["mdlm-tiny", "--precision", "fp8"],
         "mdlm-tiny.yaml: run.precision: Input should be 'fp32', 'bf16' or 'fp16' (got 'fp8')"),
        (["llada-8b", "--seq-len", "64"],
         "llada-8b.yaml: run: gen_len 128 exceeds seq_len 64"),
        ([chain], (f"{chain}: op 'act': input 'h' is [1,16,128] but op 'ffn1' made it "
                  "[1,16,256]")),
        ([chain, "--batch", "2"], (f"{chain} is a trace file: run overrides (batch) do not "
                                  "apply")),
        (["mdlm-tiny", *SMALL, "-o", str(tmp_path)], f"cannot write {tmp_path}: Is a directory"),
    ]


def test_bad_input_one_line_exit_1(tmp_path, monkeypatch, capsys):
    for args, message in _bad_cases(tmp_path):
        code, out, err = run_main(monkeypatch, capsys, *args)
        assert code == 1, (args, err)
        assert out == ""
        # Bundled configs are named by their full path; compare from the file name on.
        line = err.rstrip("\n")
        assert "\n" not in line and "Traceback" not in line, err
        assert line.startswith("error: ") and line.endswith(message), (line, message)


def test_cli_runner_gets_the_one_line_error(tmp_path):
    """In-process (CliRunner, no console wrapper) bad input is the same one line, exit 1."""
    res = invoke("gpt-2")
    assert res.exit_code == 1
    assert res.output.strip() == f"error: unknown workload 'gpt-2'; known: {KNOWN}"


def _dlmsim() -> str:
    return dlmsim_exe()


def test_console_script_bad_trace_file(tmp_path):
    """The installed `dlmsim` script on a trace file whose shapes do not chain: stderr is
    one line naming the file, the op and the tensor; exit code 1; no traceback."""
    path = tmp_path / "chain.trace.yaml"
    path.write_text(CHAIN_BROKEN)
    args = [str(path)]
    message = (f"error: {path}: op 'act': input 'h' is [1,16,128] but op 'ffn1' made it "
               "[1,16,256]")
    proc = subprocess.run([_dlmsim(), "trace", *args], capture_output=True, text=True,
                          check=False, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [message]


def test_console_script_ok(tmp_path):
    """Exit 0 and a parsable CSV from the installed script; nothing written to the cwd."""
    proc = subprocess.run([_dlmsim(), "trace", "mdlm-tiny", *SMALL, "-f", "csv"],
                          capture_output=True, text=True, check=False, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_csv(io.StringIO(proc.stdout))) == len(
        load_workload("mdlm-tiny", batch=1, seq_len=8).ops)
    assert list(tmp_path.iterdir()) == []

