"""Find or install uv, print its path. Needs only the Python standard library.

Tries, in order: uv on PATH; one installed here before; pip (``--target``, no venv needed);
and, where Python has no pip at all (a bare Debian), the wheel from PyPI over HTTPS.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

TOOLS = Path(".wuye/tools")
TARGET = TOOLS / "uv"
BINARY = TARGET / "bin" / "uv"


def _pip_install() -> bool:
    base = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(TARGET)]
    for extra in ([], ["--break-system-packages"]):
        if subprocess.run([*base, *extra, "uv"], stdout=sys.stderr, stderr=sys.stderr, check=False).returncode == 0:
            return BINARY.exists()
    return False


def _wheel_tag() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(machine, machine)
    libc = "musllinux" if "musl" in (platform.libc_ver()[0] or "") else "manylinux"
    return f"{libc}_2_17_{arch}" if libc == "manylinux" else f"musllinux_1_1_{arch}"


def _download() -> bool:
    index = os.environ.get("WUYE_PYPI_JSON", "https://pypi.org/pypi/uv/json")
    with urllib.request.urlopen(index, timeout=60) as response:  # noqa: S310 - a fixed https URL
        release = json.load(response)
    tag = _wheel_tag()
    wheels = [f for f in release["urls"] if f["filename"].endswith(".whl") and tag in f["filename"]]
    if not wheels:
        return False
    # Mirrors may answer with URLs relative to the index.
    with urllib.request.urlopen(urllib.parse.urljoin(index, wheels[0]["url"]), timeout=300) as response:  # noqa: S310
        payload = response.read()
    with zipfile.ZipFile(io.BytesIO(payload)) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith("/scripts/uv"))
        BINARY.parent.mkdir(parents=True, exist_ok=True)
        BINARY.write_bytes(wheel.read(name))
    BINARY.chmod(BINARY.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return True


def main() -> int:
    found = shutil.which("uv")
    if found:
        print(found)
        return 0
    if not BINARY.exists():
        TOOLS.mkdir(parents=True, exist_ok=True)
        print("installing uv into .wuye/tools", file=sys.stderr)
        if not (_pip_install() or _download()):
            print("could not install uv (needs PyPI)", file=sys.stderr)
            return 1
    print(BINARY.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
