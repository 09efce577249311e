"""The source itself: no unused import, undefined name or shadowed definition (pyflakes' checks, through flake8 so
that a deliberate `# noqa: F401` re-export stays allowed); and no medium or high finding of bandit in the
application's code, each deliberate exception marked `# nosec <test>` on its line with the reason beside it."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_pyflakes_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "flake8", "--select=F", "app.py", "nanbyo", "views", "models", "forms",
                             "tests", "bench", "migrations"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bandit_finds_nothing_of_medium_or_high_severity():
    result = subprocess.run([sys.executable, "-m", "bandit", "-q", "-r", "--severity-level", "medium", "app.py", "nanbyo",
                             "views", "models", "forms"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
