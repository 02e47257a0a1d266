"""Install the quetz server the destination tests start, once, into its own virtualenv.

quetz pins old libraries, so it lives in ``.venv-quetz`` beside the checkout, not in the test
environment. ``.ci/run`` runs this file before the tests (``python3 tests/quetz_install.py``);
without it, a session fixture in conftest.py installs it before the first test runs (when some
test uses quetz), never inside a test. ``$AIRGAP_QUETZ`` names an existing ``quetz``
executable instead. Standard library only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# fastapi >= 0.106 closes a request's database session before its background tasks run; quetz's
# indexing task then leaks a connection per upload and fails after ~80 uploads (QueuePool limit)
QUETZ_REQUIREMENTS = ["quetz-server==0.10.4", "fastapi<0.106"]


def quetz_executable(venv: Path = ROOT / ".venv-quetz") -> str:
    """``$AIRGAP_QUETZ``, else ``venv``'s quetz, installed there first unless it already holds these pins."""
    given = os.environ.get("AIRGAP_QUETZ")
    if given:
        return given
    exe = venv / "bin" / "quetz"
    marker = venv / "airgap-requirements.txt"
    wanted = "\n".join(QUETZ_REQUIREMENTS)
    if not exe.exists() or not marker.exists() or marker.read_text() != wanted:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *QUETZ_REQUIREMENTS], check=True)
        marker.write_text(wanted)
    return str(exe)


if __name__ == "__main__":
    print(quetz_executable())
