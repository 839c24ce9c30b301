"""tetriserve from Python: the Rust simulator of Diffusion Transformer serving under deadlines.

Everything runs in the Rust library; this package converts arguments and results.

- ``simulate(scenario=None, policies=None, **overrides)`` runs what ``tetriserve simulate`` runs
  (the same scenario resolution, defaults and errors) and returns a :class:`Result` whose
  ``requests`` and ``works`` are pandas DataFrames.
- ``sweep(scenario, out)`` runs a scenario's ``[sweep]`` grid as ``tetriserve sweep`` does and
  returns its results table.
- :class:`Trace` generates, imports, reads and writes traces.
- :class:`Policy`: subclass it and implement ``decide(view) -> list[Decision]`` to schedule in
  Python; the Rust engine, its invariant checks and the attainment bound run it like any other.
- ``tetriserve.gym.ServingEnv``: a Gymnasium environment (imported on demand).

Overrides are the command line's flags with ``_`` for ``-``: ``rate=12`` is ``--rate 12``,
``slo_scale=1.2`` is ``--slo-scale 1.2``, ``slo_base=["2048=7.5"]`` repeats ``--slo-base``,
``trace="traces/tiny.csv"`` is ``--trace``. Errors raise :class:`TetriserveError` with the
command line's message (file, line and field, or the flag).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from typing import Any, Mapping, Sequence

from . import _core
from ._core import Decision, GpuSet, Request, TetriserveError, View

__all__ = [
    "Decision",
    "GpuSet",
    "Policy",
    "Request",
    "Result",
    "TetriserveError",
    "Trace",
    "View",
    "policy_names",
    "simulate",
    "sweep",
]


def _flags(overrides: Mapping[str, Any]) -> list[str]:
    """Command-line words for keyword overrides: ``slo_scale=1.2`` -> ``--slo-scale 1.2``."""
    words: list[str] = []
    for key, value in overrides.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words += [f"{flag}={_word(v)}" for v in value]
        elif isinstance(value, Mapping):
            words += [f"{flag}={k}={_word(v)}" for k, v in value.items()]
        else:
            # `--flag=value`, so that a negative number is a value, not a flag.
            words.append(f"{flag}={_word(value)}")
    return words


def _word(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    return os.fspath(v) if isinstance(v, os.PathLike) else str(v)


class Policy:
    """A scheduling policy written in Python.

    Subclass it and implement ``decide(view)``: called at every decision point (arrivals,
    completed work, a timer asked for with ``Decision.wake_at``) with a read-only :class:`View`,
    it returns the decisions for that instant (``Decision.dispatch``, ``wake_at``, ``drop``,
    ``cut``). The view is valid only during the call. An invalid decision (busy GPUs, too many
    steps, ...) stops the run with :class:`TetriserveError`, as it does for a Rust policy; an
    exception raised by ``decide`` stops it with that exception.

    ``name`` is the name in results (default: the class name); set ``batches = True`` if it
    dispatches batches of several requests (the executor then prepares every batch size when
    the scenario turns batching on).

    Use a fresh object per ``simulate`` call: a policy keeps its memory across calls.
    """

    name: str | None = None
    batches: bool = False

    def decide(self, view: View) -> list[Decision]:  # pragma: no cover - abstract
        raise NotImplementedError("implement decide(view) -> list[Decision]")


class Result:
    """The outcome of :func:`simulate`: one run per policy, on one workload.

    ``requests`` / ``works`` are pandas DataFrames built from the records' columns (plain
    numpy-backed columns: integer nanoseconds stay exact ``int64``; nullable ones use pandas'
    ``Int64``; ``policy`` and ``outcome`` are categorical). They are built on first access.
    """

    def __init__(self, runs: _core.Runs):
        self._runs = runs
        self._requests = None
        self._works = None

    @property
    def policies(self) -> list[str]:
        """The policies that ran, in order."""
        return self._runs.policies

    @property
    def description(self) -> str:
        """What ran, as the command line describes it."""
        return self._runs.description

    @property
    def warnings(self) -> list[str]:
        return self._runs.warnings

    @property
    def bound(self) -> float | None:
        """Upper bound on SLO attainment for this workload and cluster (any policy)."""
        return self._runs.bound

    @property
    def summary(self) -> dict[str, dict]:
        """Each policy's summary.json, parsed: ``{policy: {...}}``."""
        return {p: json.loads(self._runs.summary_json(p)) for p in self.policies}

    @property
    def comparison(self):
        """comparison.csv as a DataFrame: one row per policy."""
        import pandas as pd

        return pd.read_csv(io.StringIO(self._runs.comparison_csv()))

    @property
    def requests(self):
        """Every request of every policy's run (column ``policy``); times in ns."""
        if self._requests is None:
            self._requests = _frame(self._runs.request_columns())
        return self._requests

    @property
    def works(self):
        """Every dispatched work of every run, in dispatch order; times in ns."""
        if self._works is None:
            self._works = _frame(self._runs.work_columns())
        return self._works

    @property
    def stages(self):
        """With disaggregated stages, each request's encode and decode on its pools, every
        policy's run (column ``policy``; the columns of stages.csv, times in seconds); ``None``
        when the stages are co-located."""
        import pandas as pd

        frames = []
        for p in self.policies:
            text = self._runs.stages_csv(p)
            if text is None:
                return None
            f = pd.read_csv(io.StringIO(text))
            f.insert(0, "policy", p)
            frames.append(f)
        return pd.concat(frames, ignore_index=True)

    def stages_csv(self, policy: str) -> str | None:
        """The policy's stages.csv as ``simulate --out`` writes it (disaggregated stages only)."""
        return self._runs.stages_csv(policy)

    def check(self) -> dict[str, list[str]]:
        """Every run's records checked against the library's invariants (no GPU double-booked,
        steps in order, verdicts consistent, ...): ``{policy: [violations]}``."""
        return dict(self._runs.check())

    def requests_csv(self, policy: str) -> str:
        """The policy's requests.csv, byte for byte as ``simulate --out`` writes it."""
        return self._runs.requests_csv(policy)

    def works_csv(self, policy: str, each: bool = False) -> str:
        """The policy's works.csv as ``simulate --out`` writes it (``each``: a row per work)."""
        return self._runs.works_csv(policy, each)

    def summary_json(self, policy: str) -> str:
        return self._runs.summary_json(policy)

    def write(self, out: str | os.PathLike, force: bool = False, timeline: bool = True) -> None:
        """Writes the directory ``simulate --out OUT`` writes (comparison.csv and, per policy,
        requests.csv, works.csv, summary.json, timeline.json), atomically; an existing
        directory is replaced only with ``force``, by the command line's rules."""
        self._runs.write(os.fspath(out), force, timeline)

    def __repr__(self) -> str:
        return f"Result(policies={self.policies}, bound={self.bound})"


def _ints(data: bytes):
    """Little-endian 8-byte integers as int64 (uint64 if one is 2^63 or more)."""
    import numpy as np

    a = np.frombuffer(data, dtype="<u8")
    if a.size and int(a.max()) >= 2**63:
        return a.copy()
    return a.view("<i8").copy()


def _frame(columns: dict):
    """A DataFrame from the extension's packed columns (see `Columns` in records.rs)."""
    import numpy as np
    import pandas as pd

    out = {}
    for name, (kind, *data) in columns.items():
        if kind == "int":
            out[name] = _ints(data[0])
        elif kind == "int?":
            mask = np.frombuffer(data[1], dtype=np.bool_).copy()
            out[name] = pd.arrays.IntegerArray(_ints(data[0]), mask)
        elif kind == "bool":
            out[name] = np.frombuffer(data[0], dtype=np.bool_).copy()
        elif kind == "category":
            out[name] = pd.Categorical.from_codes(_ints(data[0]), categories=data[1])
        else:
            out[name] = pd.Series(data[0], dtype=object)
    return pd.DataFrame(out)


def simulate(
    scenario: str | os.PathLike | Mapping[str, Any] | None = None,
    policies: Sequence[str | Policy] | str | Policy | None = None,
    *,
    works: bool = True,
    **overrides: Any,
) -> Result:
    """Runs a scenario as ``tetriserve simulate`` does and returns its :class:`Result`.

    ``scenario``: None (the built-in default), a TOML file, or a dict with the file's tables.
    ``policies``: names (``"xdit-sp4"``, groups ``"all"``, ``"paper"``, ``"ablation"``) and
    :class:`Policy` objects; None runs the scenario's own. Named policies run first, in the
    command line's order, then the Python ones in the order given.
    ``works``: keep every work's record (``works``, ``works_csv``); ``False`` counts them
    into the summaries and drops them, as the command line does without ``--out`` (less
    memory and time for large runs).
    ``overrides``: command-line flags (``rate=12``, ``slo_scale=1.2``, ``gpus=16``, ...).
    """
    if policies is None:
        policies = []
    elif isinstance(policies, (str, Policy)) or hasattr(policies, "decide"):
        policies = [policies]
    names: list[str] = []
    custom: list[Any] = []
    for p in policies:
        if isinstance(p, str):
            names.append(p)
        elif hasattr(p, "decide"):
            custom.append(p)
        else:
            raise TypeError(f"policies: expected names or Policy objects, got {type(p).__name__}")
    taken = set()
    for p in custom:
        n = getattr(p, "name", None) or type(p).__name__
        if n in taken or n in _core.policy_names():
            raise ValueError(f"policy name `{n}` is taken; give the Python policy another `name`")
        taken.add(n)
    if "policy" in overrides:
        raise TypeError("pass policies as policies=[...]")
    if isinstance(scenario, os.PathLike):
        scenario = os.fspath(scenario)
    trace = overrides.get("trace")
    if isinstance(trace, Trace):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "trace.csv")
            trace.write(path)
            words = _flags({**overrides, "trace": path}) + [f"--policy={n}" for n in names]
            return Result(_core.simulate(scenario, words, custom, works))
    words = _flags(overrides) + [f"--policy={n}" for n in names]
    return Result(_core.simulate(scenario, words, custom, works))


def sweep(
    scenario: str | os.PathLike | dict | None,
    out: str | os.PathLike | None = None,
    *,
    shard: str | None = None,
    runs: bool = False,
    rerun: bool = False,
    jobs: int | None = None,
):
    """Runs the scenario's ``[sweep]`` grid as ``tetriserve sweep`` does (points whose results
    exist in ``out`` for the same scenario are reused) and returns results.csv as a DataFrame.
    ``scenario`` is a TOML file, a dict with the file's tables (as for ``simulate``) or None.
    Without ``out`` the sweep runs in a temporary directory."""
    import pandas as pd

    if out is None:
        with tempfile.TemporaryDirectory() as tmp:
            path = _core.sweep(scenario, os.path.join(tmp, "sweep"), shard, runs, rerun, jobs)
            return pd.read_csv(path)
    path = _core.sweep(scenario, out, shard, runs, rerun, jobs)
    return pd.read_csv(path)


def policy_names() -> list[str]:
    """The names ``policies=`` accepts: the registered policies and the groups."""
    return _core.policy_names()


class Trace:
    """A workload: requests with arrival, resolution, steps and deadline (times in ns)."""

    def __init__(self, inner: _core.Trace):
        self._inner = inner

    @staticmethod
    def generate(scenario: str | os.PathLike | None = None, **overrides: Any) -> "Trace":
        """Generates a workload as ``tetriserve trace generate`` does (``requests=500``,
        ``mix="skewed"``, ``seed=3``, ...)."""
        s = os.fspath(scenario) if scenario is not None else None
        return Trace(_core.Trace.generate(s, _flags(overrides)))

    @staticmethod
    def read(path: str | os.PathLike, scenario: Any = None, **overrides: Any) -> "Trace":
        """Reads a trace CSV as ``simulate(scenario, trace=path, **overrides)`` replays it:
        rows without ``slo_s`` get the scenario's deadline for their resolution
        (``slo_scale=``, ``time_scale=`` apply)."""
        if isinstance(scenario, os.PathLike):
            scenario = os.fspath(scenario)
        return Trace(_core.Trace.read(scenario, _flags(dict(trace=path, **overrides))))

    @staticmethod
    def import_log(path: str | os.PathLike, format: str, **overrides: Any) -> "Trace":
        """Imports another tool's log as ``tetriserve trace import --format FORMAT`` does
        (``vllm-omni`` or ``alibaba-genai``; ``mix=``, ``seed=``, ``steps=``, ``time_scale=``)."""
        with tempfile.TemporaryDirectory() as tmp:
            words = [f"--format={format}"] + _flags(overrides)
            return Trace(
                _core.Trace.import_log(os.fspath(path), words, os.path.join(tmp, "trace.csv"))
            )

    def write(self, path: str | os.PathLike) -> None:
        """Writes the trace CSV that :meth:`read` and ``simulate(trace=...)`` accept."""
        self._inner.write(os.fspath(path))

    def to_csv(self) -> str:
        return self._inner.to_csv()

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(self._inner.columns())

    def __len__(self) -> int:
        return len(self._inner)

    def __repr__(self) -> str:
        return f"Trace({len(self)} requests)"
