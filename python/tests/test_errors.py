"""Errors are the command line's: the same message, naming the flag, the file, its line and
field; and they are Python exceptions, never crashes."""

import pytest

import tetriserve
from tetriserve import TetriserveError
from conftest import run_cli


def cli_error(cli, *args):
    p = run_cli(cli, "simulate", *args)
    assert p.returncode != 0
    # After the run's description (printed once the scenario has loaded), the error.
    at = p.stderr.find("error: ")
    assert at == 0 or p.stderr[at - 1] == "\n", p.stderr
    return p.stderr[at + len("error: "):].rstrip("\n")


def py_error(**kwargs):
    with pytest.raises(TetriserveError) as e:
        tetriserve.simulate(**kwargs)
    return str(e.value)


def test_unknown_policy(cli):
    msg = py_error(policies=["rsp"])
    assert "unknown policy `rsp`" in msg and "did you mean `rssp`" in msg
    assert msg == cli_error(cli, "-p", "rsp")


def test_bad_flag_value_names_the_flag(cli):
    msg = py_error(rate=-3)
    assert "--rate" in msg
    assert msg == cli_error(cli, "--rate=-3")


def test_flag_with_nothing_to_act_on(cli, root):
    trace = str(root / "traces" / "tiny.csv")
    msg = py_error(trace=trace, rate=10)
    assert msg == cli_error(cli, "--trace", trace, "--rate", "10")


def test_scenario_file_error_names_file_line_and_key(cli, tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('name = "x"\n\n[workload]\nrequests = "many"\n')
    msg = py_error(scenario=str(f))
    assert str(f) in msg and ":4" in msg
    p = run_cli(cli, "simulate", "-s", str(f))
    assert p.stderr == f"error: {msg}\n"


def test_trace_row_error_names_file_line_and_field(cli, tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("id,arrival_s,width,height,steps\n1,0.5,1024,1024,28\n2,oops,1024,1024,28\n")
    msg = py_error(trace=str(f), policies=["rssp"])
    assert f"{f}:3" in msg and "arrival_s" in msg
    assert msg == cli_error(cli, "--trace", str(f), "-p", "rssp")


def test_unknown_keyword_is_clap_message():
    msg = py_error(rat=3)
    assert "--rat" in msg


def test_output_flags_are_refused():
    with pytest.raises(TetriserveError, match="--out"):
        tetriserve.simulate(out="/tmp/x")


def test_a_dict_error_names_the_dict():
    msg = py_error(scenario={"workload": {"requests": "many"}})
    assert msg.startswith("scenario dict:2: ") and '"many"' in msg
    with pytest.raises(TypeError, match="not a TOML value"):
        tetriserve.simulate(scenario={"workload": {"requests": object()}})
