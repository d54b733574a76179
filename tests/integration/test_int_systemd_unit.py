"""The systemd unit passes systemd-analyze, and stays as hardened as docs/daemon.md says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "retentiond.service"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed (Debian: systemd)")


def _with_existing_command(tmp_path: Path) -> Path:
    """The unit with ExecStart= pointing at this environment's retentiond (verify checks it
    exists; /usr/bin/retentiond is where a package would put it)."""
    command = Path(sys.executable).with_name("retentiond")
    unit = tmp_path / "retentiond.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/retentiond", str(command)))
    return unit


@needs_analyze
def test_systemd_analyze_verify_passes(tmp_path):
    """systemd-analyze verify reports nothing."""
    unit = _with_existing_command(tmp_path)
    run = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr


@needs_analyze
def test_security_exposure_stays_low(tmp_path):
    """systemd-analyze security scores the unit at most 1.5 (docs/daemon.md records 1.2)."""
    unit = _with_existing_command(tmp_path)
    run = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                         capture_output=True, text=True, timeout=60)
    if "--offline" in run.stderr and run.returncode != 0:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    match = re.search(r"Overall exposure level for retentiond.service: ([0-9.]+)", run.stdout)
    assert match, run.stdout + run.stderr
    assert float(match.group(1)) <= 1.5


def test_unit_has_the_service_contract():
    """Type=notify with a watchdog, restart on failure but not on configuration errors."""
    lines = {line.strip() for line in UNIT.read_text().splitlines()}
    for expected in ("Type=notify", "NotifyAccess=main", "WatchdogSec=60s", "Restart=on-failure",
                     "RestartPreventExitStatus=78", "StateDirectory=retentiond",
                     "ConfigurationDirectory=retentiond", "CapabilityBoundingSet=",
                     "SystemCallFilter=@system-service", "ProtectSystem=strict",
                     "NoNewPrivileges=yes", "PrivateTmp=yes", "UMask=0077"):
        assert expected in lines, expected
    assert any(line.startswith("LoadCredential=") for line in lines)


TEMPLATE = ROOT / "systemd" / "retentiond@.service"
TARGET = ROOT / "systemd" / "retentiond.target"

#: What the instance template may change of retentiond.service (its "instance:" lines).
INSTANCE_ONLY = {"Description=retentiond retention and disposal scheduler, instance %i",
                 "PartOf=retentiond.target", "Environment=RETENTIOND_INSTANCE=%H-%i",
                 "EnvironmentFile=%E/retentiond/instance-%i.env",
                 "RestartPreventExitStatus=75 78", "WantedBy=retentiond.target"}
SINGLE_ONLY = {"Description=retentiond retention and disposal scheduler",
               "RestartPreventExitStatus=78", "WantedBy=multi-user.target"}


def _settings(path: Path, drop: set[str]) -> list[str]:
    return [line for line in (raw.strip() for raw in path.read_text().splitlines())
            if line and not line.startswith("#") and line not in drop]


def test_the_instance_template_is_the_same_service_apart_from_its_instance_lines():
    """retentiond@.service must not drift from retentiond.service: same hardening, same
    contract; only the lines that make it one of several instances differ."""
    assert _settings(TEMPLATE, INSTANCE_ONLY) == _settings(UNIT, SINGLE_ONLY)
    lines = set(_settings(TEMPLATE, set()))
    assert lines >= INSTANCE_ONLY


@needs_analyze
def test_the_instance_template_and_target_pass_verify_and_stay_hardened(tmp_path):
    """An instance (retentiond@2.service) and the target pass systemd-analyze verify, and the
    instance scores as low as the single service."""
    command = Path(sys.executable).with_name("retentiond")
    instance = tmp_path / "retentiond@2.service"
    instance.write_text(TEMPLATE.read_text().replace("/usr/bin/retentiond", str(command)))
    target = tmp_path / "retentiond.target"
    target.write_text(TARGET.read_text())
    run = subprocess.run(["systemd-analyze", "verify", str(instance), str(target)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr
    run = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(instance)],
                         capture_output=True, text=True, timeout=60)
    if "--offline" in run.stderr and run.returncode != 0:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    match = re.search(r"Overall exposure level for retentiond@2.service: ([0-9.]+)", run.stdout)
    assert match, run.stdout + run.stderr
    assert float(match.group(1)) <= 1.5
