"""Policies written in Python run on the Rust engine: the 20-line fixed-SP policy reproduces
`xdit-sp4` record for record, the EDF example passes the invariant checks, and a policy's
mistakes stop the run with a clear exception."""

import json

import pytest

import tetriserve
from tetriserve import Decision, GpuSet, TetriserveError
from edf import EDF
from fixed_sp import FixedSP


def same_records(result, a, b):
    assert result.requests_csv(a) == result.requests_csv(b)
    assert result.works_csv(a, each=True) == result.works_csv(b, each=True)
    sa, sb = json.loads(result.summary_json(a)), json.loads(result.summary_json(b))
    for s in (sa, sb):
        s.pop("policy"), s.pop("scheduler")
    assert sa == sb


@pytest.mark.parametrize(
    "overrides",
    [{}, {"gpus": 16, "rate": 30, "requests": 200, "mix": "skewed", "seed": 5}],
    ids=["default", "two-nodes-skewed"],
)
def test_python_fixed_sp4_reproduces_xdit_sp4(overrides):
    result = tetriserve.simulate(policies=["xdit-sp4", FixedSP(4)], **overrides)
    assert result.policies == ["xdit-sp4", "py-sp4"]
    same_records(result, "xdit-sp4", "py-sp4")
    req = result.requests
    mine = req[req.policy == "py-sp4"].drop(columns="policy").reset_index(drop=True)
    theirs = req[req.policy == "xdit-sp4"].drop(columns="policy").reset_index(drop=True)
    assert mine.equals(theirs)


def test_python_fixed_sp_other_degrees_match_too():
    result = tetriserve.simulate(policies=["xdit-sp1", "xdit-sp8", FixedSP(1), FixedSP(8)],
                                 requests=100)
    same_records(result, "xdit-sp1", "py-sp1")
    same_records(result, "xdit-sp8", "py-sp8")


def test_edf_example_runs_and_keeps_the_invariants():
    result = tetriserve.simulate(policies=[EDF()], requests=150, gpus=16)
    assert result.policies == ["py-edf"]
    assert result.check() == {"py-edf": []}
    s = result.summary["py-edf"]
    assert s["met"] + s["missed"] + s["dropped"] == 150
    assert s["dropped"] == 0  # it never drops; every request is eventually served
    assert result.bound >= s["slo_attainment"]


class Busy(tetriserve.Policy):
    """Dispatches every waiting request onto GPU 0: the second one finds it busy."""

    name = "py-busy"

    def decide(self, view):
        return [Decision.dispatch(r, 1, GpuSet(0, 1)) for r in view.waiting()]


def test_an_invalid_decision_is_the_engines_error():
    with pytest.raises(TetriserveError, match=r"policy `py-busy`: dispatched onto .* busy"):
        tetriserve.simulate(policies=[Busy()], rate=600, requests=10)


class Raises(tetriserve.Policy):
    def decide(self, view):
        if view.now > 0:
            raise ZeroDivisionError("my bug")
        return []


def test_an_exception_in_decide_stops_the_run_with_that_exception():
    with pytest.raises(ZeroDivisionError, match="my bug"):
        tetriserve.simulate(policies=[Raises()], requests=10)


class Future(tetriserve.Policy):
    def decide(self, view):
        return [Decision.drop(10_000)]


def test_a_request_that_has_not_arrived_is_refused():
    with pytest.raises(ValueError, match="request 10000, which has not arrived"):
        tetriserve.simulate(policies=[Future()], requests=10)


class KeepsView(FixedSP):
    def __init__(self):
        super().__init__(8)
        self.views = []

    def decide(self, view):
        self.views.append(view)
        return super().decide(view)


def test_a_view_is_valid_only_during_decide():
    p = KeepsView()
    p.name = "keeps-view"
    tetriserve.simulate(policies=[p], requests=3)
    with pytest.raises(RuntimeError, match="has returned"):
        p.views[0].now


class NotAList(tetriserve.Policy):
    def decide(self, view):
        return 3


def test_decide_must_return_decisions():
    with pytest.raises(TypeError, match="must return a list of Decision"):
        tetriserve.simulate(policies=[NotAList()], requests=3)


def test_a_python_policy_cannot_take_a_registered_name():
    p = FixedSP(4)
    p.name = "xdit-sp4"
    with pytest.raises(ValueError, match="taken"):
        tetriserve.simulate(policies=[p])


def test_views_show_what_the_engine_knows():
    seen = {}

    class Probe(FixedSP):
        def decide(self, view):
            if not seen and view.arrived:
                r = view.request(view.arrived[0])
                seen.update(
                    now=view.now, arrival=r.arrival, phase=r.phase, steps=r.remaining_steps,
                    free=view.free_count(), mask=view.free_mask(0), degrees=view.degrees(),
                    t1=view.step_time(r.id, 1), t8=view.step_time(r.id, 8),
                    low=view.lowest_free(0, 2),
                )
                with pytest.raises(IndexError):
                    view.request(10_000)
                with pytest.raises(ValueError):
                    view.step_time(r.id, 3)
            return super().decide(view)

    result = tetriserve.simulate(policies=[Probe(8)], requests=5, steps=20)
    assert result.check() == {"py-sp8": []}
    assert seen["now"] == seen["arrival"] and seen["phase"] == "waiting"
    assert seen["steps"] == 20 and seen["free"] == 8 and seen["mask"] == 0xFF
    assert seen["degrees"] == [1, 2, 4, 8]
    assert seen["t8"] < seen["t1"]  # wider is faster per step
    assert seen["low"] == GpuSet(0, 0b11)
