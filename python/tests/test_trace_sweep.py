"""Traces and sweeps from Python are the command line's."""

import pandas as pd
import pytest

import tetriserve
from tetriserve import TetriserveError
from conftest import run_cli


def test_generated_trace_is_trace_generates_output(cli, tmp_path):
    t = tetriserve.Trace.generate(requests=40, mix="skewed", seed=3, rate=18)
    assert len(t) == 40
    p = run_cli(cli, "trace", "generate", "--requests", "40", "--mix", "skewed", "--seed", "3",
                "--rate", "18")
    assert p.returncode == 0, p.stderr
    assert t.to_csv() == p.stdout
    df = t.to_pandas()
    assert list(df.columns[:2]) == ["id", "arrival_ns"] and df["arrival_ns"].is_monotonic_increasing


def test_trace_round_trips_and_replays(tmp_path):
    t = tetriserve.Trace.generate(requests=25, seed=1)
    f = tmp_path / "t.csv"
    t.write(f)
    back = tetriserve.Trace.read(f)
    assert back.to_csv() == t.to_csv()
    # Replaying the written trace gives the run of the generated workload.
    replay = tetriserve.simulate(policies=["rssp"], trace=f)
    direct = tetriserve.simulate(policies=["rssp"], requests=25, seed=1)
    assert replay.requests_csv("rssp") == direct.requests_csv("rssp")
    # A Trace object replays as its file does.
    from_object = tetriserve.simulate(policies=["rssp"], trace=t)
    assert from_object.requests_csv("rssp") == direct.requests_csv("rssp")


def test_import_is_trace_imports_output(cli, root, tmp_path):
    log = root / "traces" / "samples" / "vllm-omni-dit.jsonl"
    t = tetriserve.Trace.import_log(log, "vllm-omni")
    f = tmp_path / "cli.csv"
    p = run_cli(cli, "trace", "import", str(log), "--format", "vllm-omni", "-o", str(f))
    assert p.returncode == 0, p.stderr
    # Rows without an SLO get the default scenario's deadline when read, as in a replay.
    assert t.to_csv() == tetriserve.Trace.read(f).to_csv()
    assert len(t) == len(f.read_text().splitlines()) - 1


def test_trace_errors_are_the_clis(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("id,arrival_s,width,height,steps\n1,0.5,1024,1024,0\n")
    try:
        tetriserve.Trace.read(f)
    except TetriserveError as e:
        assert f"{f}:2" in str(e) and "steps" in str(e)
    else:
        raise AssertionError("a zero-step row was accepted")


SWEEP = """
name = "tiny-sweep"
[workload]
requests = 30
[sweep]
slo_scales = [1.0, 1.5]
seeds = [1, 2]
policies = ["xdit-sp8", "stepwise"]
"""


def test_sweep_returns_the_results_table_and_resumes(cli, tmp_path):
    s = tmp_path / "sweep.toml"
    s.write_text(SWEEP)
    out = tmp_path / "py"
    df = tetriserve.sweep(s, out, jobs=1)
    assert isinstance(df, pd.DataFrame) and len(df) == 2 * 2 * 2
    assert set(df["policy"]) == {"xdit-sp8", "stepwise"}
    again = tetriserve.sweep(s, out, jobs=1)  # every point reused
    pd.testing.assert_frame_equal(df, again)
    p = run_cli(cli, "sweep", "-s", str(s), "--out", str(tmp_path / "cli"), "--jobs", "1")
    assert p.returncode == 0, p.stderr
    theirs = pd.read_csv(tmp_path / "cli" / "results.csv")
    assert list(theirs.columns) == list(df.columns)
    keep = [c for c in df.columns if "decide" not in c and "wall" not in c]
    pd.testing.assert_frame_equal(df[keep], theirs[keep])


def test_sweep_takes_the_scenario_as_a_dict(tmp_path):
    s = tmp_path / "sweep.toml"
    s.write_text(SWEEP)
    from_file = tetriserve.sweep(s, tmp_path / "file", jobs=1)
    as_dict = {
        "name": "tiny-sweep",
        "workload": {"requests": 30},
        "sweep": {"slo_scales": [1.0, 1.5], "seeds": [1, 2], "policies": ["xdit-sp8", "stepwise"]},
    }
    from_dict = tetriserve.sweep(as_dict, tmp_path / "dict", jobs=1)
    keep = [c for c in from_file.columns if "decide" not in c and "wall" not in c and c != "scenario"]
    pd.testing.assert_frame_equal(from_file[keep], from_dict[keep])
    with pytest.raises(tetriserve.TetriserveError, match="scenario dict"):
        tetriserve.sweep({"sweep": {"seeds": "one"}}, tmp_path / "bad", jobs=1)
