"""The source itself: no unused import, undefined name or shadowed definition (pyflakes' checks, through flake8 so
that a deliberate `# noqa: F401` re-export stays allowed)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_pyflakes_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "flake8", "--select=F", "app.py", "nanbyo", "views", "models", "forms",
                             "tests", "bench", "migrations"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
