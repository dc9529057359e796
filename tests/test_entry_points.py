"""Each entry point's module configures every mapper on its own: ``wuye seed --demo`` once
failed on a fresh machine because the seed did not import the models its relationships name."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = "import {module}; from sqlalchemy.orm import configure_mappers; configure_mappers()"


@pytest.mark.parametrize(
    "module", ["backend.seed", "backend.iot_ingest", "backend.cli", "workers.settings", "iot.simulator", "backend.app"]
)
def test_the_module_alone_configures_every_mapper(module: str) -> None:
    # when the module is imported by a fresh interpreter and the mappers are configured
    done = subprocess.run([sys.executable, "-c", CHECK.format(module=module)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    # then nothing is missing
    assert done.returncode == 0, done.stderr[-2000:]
