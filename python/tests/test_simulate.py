"""Runs from Python are the command line's runs: same records byte for byte, same summaries,
DataFrames that agree with them, and the invariant checker passing."""

import json

import pandas as pd
import pytest

import tetriserve
from tetriserve import TetriserveError
from conftest import run_cli


def test_default_scenario_records_equal_the_clis_files(cli, tmp_path):
    out = tmp_path / "cli"
    p = run_cli(cli, "simulate", "--out", str(out))
    assert p.returncode == 0, p.stderr
    result = tetriserve.simulate()
    assert len(result.policies) >= 6
    for policy in result.policies:
        d = out / policy
        assert result.requests_csv(policy) == (d / "requests.csv").read_text(), policy
        assert result.works_csv(policy) == (d / "works.csv").read_text(), policy
        mine = json.loads(result.summary_json(policy))
        theirs = json.loads((d / "summary.json").read_text())
        # The scheduler's decision times are wall-clock measurements, the only thing that varies.
        mine.pop("scheduler"), theirs.pop("scheduler")
        assert mine == theirs, policy
    # The run description is the one the command line prints first on stderr.
    assert result.description in p.stderr


def test_overrides_are_the_clis_flags(cli, tmp_path):
    flags = dict(requests=60, rate=18, slo_scale=1.3, mix="skewed", seed=7, gpus=16)
    result = tetriserve.simulate(policies=["rssp", "stepwise"], **flags)
    out = tmp_path / "cli"
    p = run_cli(cli, "simulate", "-p", "rssp", "-p", "stepwise", "--requests", "60",
                "--rate", "18", "--slo-scale", "1.3", "--mix", "skewed", "--seed", "7",
                "--gpus", "16", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert result.policies == ["rssp", "stepwise"]
    for policy in result.policies:
        assert result.requests_csv(policy) == (out / policy / "requests.csv").read_text()
    assert "overridden by" in result.description


def test_dataframes_agree_with_the_summaries():
    result = tetriserve.simulate(policies=["xdit-sp2", "tetriserve"], requests=80)
    req, works, summary = result.requests, result.works, result.summary
    assert list(req["policy"].unique()) == ["xdit-sp2", "tetriserve"]
    for policy, s in summary.items():
        r = req[req["policy"] == policy]
        assert len(r) == s["requests"] == 80
        assert (r["outcome"] == "met").sum() == s["met"]
        assert (r["outcome"] == "dropped").sum() == s["dropped"]
        w = works[works["policy"] == policy]
        assert len(w) == s["works"]
        # GPU time of the works equals the summary's (degree x duration).
        gpu_s = ((w["end_ns"] - w["start_ns"]) * w["degree"]).sum() / 1e9
        assert gpu_s == pytest.approx(s["gpu_seconds"], rel=1e-9)
        # A met request finished by its deadline; times are exact integers.
        met = r[r["outcome"] == "met"]
        assert (met["finish_ns"] <= met["deadline_ns"]).all()
        assert req["arrival_ns"].dtype == "int64"
    assert result.bound == summary["tetriserve"]["slo_attainment_bound"]
    assert all(v == [] for v in result.check().values())
    cmp = result.comparison
    assert isinstance(cmp, pd.DataFrame) and list(cmp["policy"]) == result.policies


def test_a_scenario_dict_is_a_scenario_file(tmp_path):
    text = '[workload]\nrequests = 40\nrate_per_min = 20.0\n\n[slo]\nscale = 1.5\n'
    f = tmp_path / "s.toml"
    f.write_text(text)
    from_file = tetriserve.simulate(str(f), policies=["xdit-sp4"])
    from_dict = tetriserve.simulate(
        {"workload": {"requests": 40, "rate_per_min": 20.0}, "slo": {"scale": 1.5}},
        policies=["xdit-sp4"],
    )
    assert from_file.requests_csv("xdit-sp4") == from_dict.requests_csv("xdit-sp4")
    assert len(from_dict.requests) == 40


def test_a_trace_replays_as_on_the_command_line(cli, tmp_path, root):
    trace = root / "traces" / "tiny.csv"
    result = tetriserve.simulate(policies=["xdit-sp4"], trace=trace, gpus=4,
                                 profile="h100-flux1-dev")
    out = tmp_path / "cli"
    p = run_cli(cli, "simulate", "--trace", str(trace), "--gpus", "4", "--profile",
                "h100-flux1-dev", "-p", "xdit-sp4", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert result.requests_csv("xdit-sp4") == (out / "xdit-sp4" / "requests.csv").read_text()


def test_dropping_works_keeps_requests_and_summaries():
    kept = tetriserve.simulate(policies=["stepwise"], requests=60)
    dropped = tetriserve.simulate(policies=["stepwise"], requests=60, works=False)
    assert dropped.requests_csv("stepwise") == kept.requests_csv("stepwise")
    a, b = dropped.summary["stepwise"], kept.summary["stepwise"]
    a.pop("scheduler"), b.pop("scheduler")
    assert a == b and a["works"] > 0
    with pytest.raises(ValueError, match="dropped them"):
        dropped.works
    with pytest.raises(ValueError, match="dropped them"):
        dropped.check()


def test_write_gives_the_clis_output_directory(cli, tmp_path):
    result = tetriserve.simulate(policies=["rssp", "stepwise"], requests=50)
    result.write(tmp_path / "py")
    p = run_cli(cli, "simulate", "-p", "rssp", "-p", "stepwise", "--requests", "50",
                "--out", str(tmp_path / "cli"))
    assert p.returncode == 0, p.stderr
    for policy in result.policies:
        for name in ("requests.csv", "works.csv", "timeline.json"):
            mine = (tmp_path / "py" / policy / name).read_text()
            assert mine == (tmp_path / "cli" / policy / name).read_text(), (policy, name)
    # comparison.csv differs only in the wall-clock decision times.
    mine = pd.read_csv(tmp_path / "py" / "comparison.csv")
    theirs = pd.read_csv(tmp_path / "cli" / "comparison.csv")
    keep = [c for c in mine.columns if not c.startswith("decide")]
    pd.testing.assert_frame_equal(mine[keep], theirs[keep])
    with pytest.raises(TetriserveError, match="exists"):
        result.write(tmp_path / "py")
    result.write(tmp_path / "py", force=True)



def test_video_clips_carry_their_frames_through_traces_records_and_views(root):
    from fixed_sp import FixedSP

    # The video-mix scenario: 512 and 1024 px images beside 480p clips of 81 frames.
    scenario = str(root / "scenarios" / "beyond" / "video-mix.toml")
    trace = tetriserve.Trace.generate(scenario, requests=40, seed=3)
    cols = trace.to_pandas()
    assert set(cols["frames"]) == {1, 81}
    seen = set()

    class Recording(FixedSP):
        """SP4, noting the shape of every request it is shown."""

        def decide(self, view):
            for rid in view.arrived:
                r = view.request(rid)
                seen.add((r.width, r.height, r.frames))
            return super().decide(view)

    result = tetriserve.simulate(scenario, policies=["xdit-sp4", Recording(4)], trace=trace)
    req, works = result.requests, result.works
    clips = req[(req["frames"] == 81) & (req["policy"] == "xdit-sp4")]
    assert len(clips) == (cols["frames"] == 81).sum()
    assert ((clips["width"] == 832) & (clips["height"] == 480)).all()
    assert set(works["frames"]) == {1, 81}
    assert (832, 480, 81) in seen and {f for _, _, f in seen} == {1, 81}


def test_disaggregated_stages_come_back_as_the_clis_files(cli, tmp_path, root):
    scenario = str(root / "scenarios" / "beyond" / "disaggregated.toml")
    flags = dict(requests=40, seed=2)
    result = tetriserve.simulate(scenario, policies=["tetriserve", "stepwise"], **flags)
    out = tmp_path / "cli"
    p = run_cli(cli, "simulate", "-s", scenario, "-p", "tetriserve", "-p", "stepwise",
                "--requests", "40", "--seed", "2", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert result.check() == {"tetriserve": [], "stepwise": []}
    for policy in result.policies:
        assert result.stages_csv(policy) == (out / policy / "stages.csv").read_text()
        assert result.requests_csv(policy) == (out / policy / "requests.csv").read_text()
        pools = result.summary[policy]["stages"]
        assert (pools["encode"]["gpus"], pools["decode"]["gpus"]) == (2, 6)
        assert pools["encode"]["served"] == 40
    st, req = result.stages, result.requests
    assert len(st) == 80
    # A request's end is its decode's end (stages.csv in seconds, requests in ns).
    ends = req.set_index(["policy", "id"])["finish_ns"]
    for row in st.itertuples():
        if row.decode_end_s == row.decode_end_s:  # not NaN: decoded
            assert abs(ends[(row.policy, row.id)] / 1e9 - row.decode_end_s) < 1e-6
    # Co-located, there are none.
    assert tetriserve.simulate(scenario, policies=["stepwise"], stages="colocated",
                               nodes=4, **flags).stages is None
