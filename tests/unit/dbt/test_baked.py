"""`datakit_dbt.baked`: the project parsed at image build time is used only when a run's parse
inputs are the ones it was parsed with; otherwise dbt parses, and the log says why."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from datakit_dbt.baked import BAKED_DIR, INPUTS_FILE, STATE_FILE, load_manifest, parse_inputs
from datakit_dbt.config import DbtRunnerConfig


def test_a_run_whose_parse_inputs_differ_parses_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = DbtRunnerConfig.model_validate(
        {
            "warehouse": {"host": "db", "dbname": "acme", "user": "dbt"},
            "project_dir": tmp_path,
            "tenant_schema_prefix": "acme_",
        }
    )
    assert load_manifest(config, None) is None  # nothing baked: a plain parse, silently
    baked = tmp_path / BAKED_DIR
    baked.mkdir()
    (baked / INPUTS_FILE).write_text(json.dumps(parse_inputs(config, None)))
    (baked / STATE_FILE).write_bytes(b"not read unless every input matches")
    caplog.set_level(logging.INFO)
    assert load_manifest(config, '{"report_date": "1998-01-01"}') is None
    other = config.model_copy(update={"tenant_schema_prefix": "", "target": "prod"})
    assert load_manifest(other, None) is None
    assert "`vars` differ(s)" in caplog.messages[0]
    assert "`target`, `tenant_schema_prefix` differ(s)" in caplog.messages[1]
