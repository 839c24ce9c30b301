"""The examples run as a newcomer would run them."""

import subprocess
import sys


def test_quickstart_runs(root):
    p = subprocess.run([sys.executable, str(root / "examples/python/quickstart.py")],
                       cwd=root, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "upper bound on attainment" in p.stdout and "py-pairs" in p.stdout
