"""A cold ``emotivoice analyze`` imports only what the switched-on stages need.

Every module imported is paid for by every CLI run (seconds for librosa's chain, PyTorch or
matplotlib): the process is run for real and its ``sys.modules`` inspected at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
from emotivoice.cli import main
code = main(sys.argv[1:])
heavy = ("torch", "transformers", "matplotlib", "librosa", "numba", "scipy.cluster")
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def _loaded(args: list[str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    loaded: list[str] = report["loaded"]
    return loaded


@pytest.mark.slow
def test_transcript_only_analysis_imports_nothing_heavy(short_wav: Path, tmp_path: Path) -> None:
    flags = ["--no-features", "--no-emotion", "--no-diarization"]
    loaded = _loaded(["analyze", str(short_wav), "-o", str(tmp_path), "-q", *flags])
    assert loaded == []


@pytest.mark.slow
def test_full_analysis_of_a_short_clip_imports_nothing_heavy(
    short_wav: Path, tmp_path: Path
) -> None:
    loaded = _loaded(["analyze", str(short_wav), "-o", str(tmp_path), "-q"])
    # the features are numpy (no librosa, numba); a 3 s clip holds too few voice windows to
    # cluster, so SciPy's clustering is never imported either
    assert loaded == []
