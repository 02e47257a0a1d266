"""benchmarks/scale.py --quick: the issue-15 benchmark still runs end to end (2,000 records, one pair per step)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_scale_benchmark_runs_in_quick_mode(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--quick", "--workdir", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    for step in ("full export", "full import", "delta export", "delta import", "plan"):
        assert any(line.startswith(step) for line in out.splitlines()), out
    assert "delta archive:" in out and "largest page after the delta import:" in out
    assert "names/" in out.split("largest page after the delta import:")[1]  # a page per name is the largest, not the subdir's


def test_the_sorted_keys_benchmark_runs_and_checks_its_bytes() -> None:
    """benchmarks/sorted_keys.py compares three encoders' bytes before it times them (it fails if they differ)."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sorted_keys.py"), "--files", "3000", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [r[0] for r in rows] == ["3000"] and all(r[-1] == "s" for r in rows), out


def test_timed_runs_are_not_sampled_and_the_memory_run_sums_both_processes() -> None:
    """The sampler (smaps_rollup every 20 ms) slowed a two-process export by 0.8-1.5 s on 2 cores, and never ran for
    one-process tar: timed runs go unsampled (their peak: the largest single process), the memory run sums both."""
    import importlib.util
    import textwrap

    spec = importlib.util.spec_from_file_location("scale_bench", ROOT / "benchmarks" / "scale.py")
    assert spec is not None and spec.loader is not None
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    hold = "b = bytearray(60 << 20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(1.5)"
    two = textwrap.dedent(f"""
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", {hold!r}])
        {hold}
        child.wait()
        """)
    _, unsampled, _ = scale.run([sys.executable, "-c", two])
    _, sampled, _ = scale.run([sys.executable, "-c", two], sample=True)
    assert 60 << 10 <= unsampled < 100 << 10  # KiB: one process's peak
    assert sampled >= 115 << 10  # both processes' 60 MiB at once


def test_the_cpu_seconds_count_the_children_the_command_waited_for() -> None:
    """A step's CPU seconds are its user and system time with its children's (an import's blob child, tar under bash):
    a child that spins 0.6 s of CPU while its parent sleeps is counted, a parent that only sleeps is not."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("scale_bench", ROOT / "benchmarks" / "scale.py")
    assert spec is not None and spec.loader is not None
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    spin = "import time, resource\nwhile resource.getrusage(resource.RUSAGE_SELF).ru_utime < 0.6: pass"
    parent = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {spin!r}], check=True)"
    wall, _, cpu = scale.run([sys.executable, "-c", parent])
    assert cpu >= 0.6 and wall >= 0.6
    idle_wall, _, idle_cpu = scale.run([sys.executable, "-c", "import time; time.sleep(0.8)"])
    assert idle_wall >= 0.8 and idle_cpu < 0.5
