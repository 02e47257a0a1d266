"""(Re)generate samples/channel: a tiny upstream conda channel made by airgap's own code.

    python samples/make_samples.py

Deterministic: running it twice writes identical files. linux-64 + noarch, every package in
both .conda and .tar.bz2 form, each record with one key conda does not know
("airgap_sample"), to show that records cross the air gap verbatim.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from airgap.testing.condapkg import PackageSpec, write_channel

HELLO = b"""#!/bin/sh
# airgap-hello: proves a package crossed the air gap and installed
cat "$(dirname "$0")/../share/airgap-demo-data/message.txt"
"""

MARK = (("airgap_sample", True),)


def specs() -> list[PackageSpec]:
    out = []
    for version, text in (("1.0", b"Hello from across the air gap.\n"), ("1.1", b"Hello again from across the air gap.\n")):
        out.append(
            PackageSpec(
                "airgap-demo-data",
                version,
                build="0",
                subdir="noarch",
                files=(("share/airgap-demo-data/message.txt", text),),
                extra=MARK,
                timestamp=1735689600000 + int(version[-1]) * 86400000,
            )
        )
    for version, build_number in (("0.1.0", 0), ("0.2.0", 1)):
        out.append(
            PackageSpec(
                "airgap-hello",
                version,
                build=f"h1234567_{build_number}",
                build_number=build_number,
                subdir="linux-64",
                depends=("airgap-demo-data >=1.0",),
                files=(("bin/airgap-hello", HELLO),),
                executables=("bin/airgap-hello",),
                license="MIT",
                license_family="MIT",
                extra=MARK,
            )
        )
    out.append(
        PackageSpec(
            "airgap-py-util",
            "0.3",
            build="pyhd8ed1ab_0",
            subdir="noarch",
            noarch="python",
            depends=("python >=3.8",),
            files=(("site-packages/airgap_py_util/__init__.py", b'GREETING = "hello"\n'),),
            extra=MARK,
        )
    )
    out.append(
        PackageSpec("airgap-extra", "2.0", build="h7654321_0", subdir="linux-64", license="GPL-3.0-only", license_family="GPL3", extra=MARK)
    )
    return out


def main() -> None:
    root = Path(__file__).resolve().parent / "channel"
    shutil.rmtree(root, ignore_errors=True)
    write_channel(root, specs(), subdirs=("linux-64", "noarch"))
    files = sorted(p for p in root.rglob("*") if p.is_file())
    print(f"wrote {len(files)} files, {sum(p.stat().st_size for p in files)} bytes under {root}")


if __name__ == "__main__":
    main()
