"""The alert rules and the stack's Prometheus configuration, checked by Prometheus' own promtool
(Debian's package, stack/ensure-prometheus.sh): every rule unit-tested, every alert covered."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from stack import prometheus

RULE_TESTS = prometheus.RULES.with_name("rules.test.yml")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: run stack/ensure-prometheus.sh (make test does)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True)


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load(prometheus.RULES.read_text(encoding="utf-8"))
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert alerts - tested == set()


def test_the_stacks_configuration_is_valid_and_scrapes_the_exporter(tmp_path: Path) -> None:
    config = prometheus.write_config(tmp_path, exporter="127.0.0.1:9188", listen="127.0.0.1:9090")
    done = promtool("check", "config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = yaml.safe_load(config.read_text(encoding="utf-8"))["scrape_configs"]
    assert {"job_name": "datakit", "static_configs": [{"targets": ["127.0.0.1:9188"]}]} in jobs
