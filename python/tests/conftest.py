"""Shared fixtures: the repository root, the command-line binary to compare against, and the
examples directory on sys.path."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "python"))


@pytest.fixture(scope="session")
def root() -> pathlib.Path:
    return ROOT


@pytest.fixture(scope="session")
def cli() -> str:
    """The `tetriserve` binary: $TETRISERVE_BIN, else one cargo already built in target/."""
    path = os.environ.get("TETRISERVE_BIN")
    if path:
        assert os.access(path, os.X_OK), f"TETRISERVE_BIN={path} is not an executable"
        return path
    for profile in ("release", "debug"):
        p = ROOT / "target" / profile / "tetriserve"
        if p.exists():
            return str(p)
    pytest.skip("no tetriserve binary: build it (cargo build --release) or set TETRISERVE_BIN")


def run_cli(cli: str, *args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([cli, *args], cwd=cwd, capture_output=True, text=True)
