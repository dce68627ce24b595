"""``make demo`` runs: every flow's scenario against the sandboxes, embedded (SQLite, in-process
broker), as on a fresh machine."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.harness.processes import OBMEN


def test_every_flow_of_the_demo_works(tmp_path: Path) -> None:
    # As on a fresh machine: none of the suite's stores or addresses, so the demo embeds its own.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OBMEN_")}
    done = subprocess.run(
        [OBMEN, "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    summary = re.search(r"== summary: (\d+) of (\d+) flows worked ==", done.stdout)
    assert summary is not None, done.stdout[-3000:] + done.stderr[-3000:]
    worked, flows = map(int, summary.groups())
    assert (worked, done.returncode) == (flows, 0), done.stdout[-3000:] + done.stderr[-3000:]
    assert "FAILED" not in done.stdout
