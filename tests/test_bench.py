"""`dlx bench`: collects the scripts' JSON lines, skips absent peers, survives failures and
timeouts, and adds MFU to BERT rows."""

from __future__ import annotations

import json
import textwrap

import pytest

from dlx import bench, cli, flops
from dlx.errors import DlxError

BERT_RECORD = {"name": "bert_mlm-vs-hf-eager", "dlx": 2000.0, "peer": 1000.0,
               "unit": "tokens/s", "ratio": 2.0, "batch": 4, "seq": 16, "hidden": 32,
               "layers": 2, "heads": 2, "intermediate": 64}
SCRIPTS = {
    "bert.py": f"""
        import json, sys
        print("a line that is not a result")
        print(json.dumps({{**{BERT_RECORD!r}, "quick": "--quick" in sys.argv}}))
    """,
    "slow.py": """
        import json, time
        print(json.dumps({"name": "partial", "dlx": 1.0, "peer": 2.0, "unit": "img/s",
                          "ratio": 0.5}), flush=True)
        time.sleep(60)
    """,
    "broken.py": """
        import sys
        sys.exit("boom: the peer crashed")
    """,
}


@pytest.fixture
def scripts(tmp_path, monkeypatch):
    """A benchmarks/ directory of fake scripts, registered in place of the real ones."""
    directory = tmp_path / "benchmarks"
    directory.mkdir()
    for name, source in SCRIPTS.items():
        (directory / name).write_text(textwrap.dedent(source))
    monkeypatch.setattr(bench, "BENCHMARKS", {
        "bert": bench.Benchmark("bert.py", (), ("--quick",)),
        "slow": bench.Benchmark("slow.py", (), ()),
        "broken": bench.Benchmark("broken.py", (), ()),
        "absent": bench.Benchmark("absent.py", ("no_such_peer_module",), (), note="see docs"),
    })
    return directory


def test_bench_writes_json_and_markdown_for_every_outcome(scripts, tmp_path, capsys):
    summary = bench.bench(bench.select("bert,slow,broken,absent"), tmp_path / "out", quick=True,
                          timeout_s=2, directory=scripts)
    assert summary["status"] == {"bert": "ok", "slow": "timeout", "broken": "failed",
                                 "absent": "skipped"}
    report = json.loads((tmp_path / "out" / "bench.json").read_text())
    runs = {run["name"]: run for run in report["benchmarks"]}
    (bert_record,) = runs["bert"]["records"]
    assert bert_record["quick"] is True and bert_record["tokens_per_s"] == 2000.0
    assert bert_record["flops_per_token"] == flops.training_flops_per_token(2, 32, 16, 64)
    assert bert_record["mfu"] is None and bert_record["mfu_note"] == "n/a on CPU"
    assert [r["name"] for r in runs["slow"]["records"]] == ["partial"]  # printed before the kill
    assert runs["broken"]["reason"] == "exit 1: boom: the peer crashed"
    assert runs["absent"]["reason"] == "not installed: no_such_peer_module; see docs"
    table = (tmp_path / "out" / "bench.md").read_text()
    assert "| bert | bert_mlm-vs-hf-eager | batch=4 seq=16 hidden=32 layers=2 heads=2 " \
           "intermediate=64 | 2,000.00 tokens/s | 1,000.00 tokens/s | 2.000 | n/a on CPU | cpu |" \
           in table
    assert "| slow | timeout: killed after 2 s |" in table
    assert "| absent | skipped: not installed: no_such_peer_module; see docs |" in table
    assert "dlx bench: [4/4] absent" in capsys.readouterr().err


def test_mfu_on_an_accelerator_row():
    h100 = {"backend": "gpu", "device_kind": "NVIDIA H100 80GB HBM3"}
    record = bench.add_mfu(BERT_RECORD, h100)
    per_token = flops.training_flops_per_token(2, 32, 16, 64)
    assert record["mfu"] == round(2000.0 * per_token / 989.5e12, 4)
    unknown = bench.add_mfu(BERT_RECORD, {"backend": "gpu", "device_kind": "Some GPU"})
    assert unknown["mfu"] is None and unknown["mfu_note"] == "no known peak for Some GPU"


def test_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(DlxError, match=r"--only='bert,nope' names unknown benchmarks \['nope'\]"):
        cli.run(["bench", "--out", str(tmp_path), "--only", "bert,nope"])
    with pytest.raises(DlxError, match="--timeout=0.0; expected a positive"):
        cli.run(["bench", "--out", str(tmp_path), "--only", "bert", "--timeout", "0"])
