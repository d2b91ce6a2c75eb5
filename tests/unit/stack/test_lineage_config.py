"""`make up`'s Airflow (stack.local_airflow) with the OpenLineage provider: on, with HTTP to the
URL of `DK_OPENLINEAGE_URL` and its macros for the runners' parent run, or off without it, as
the provider itself reads its configuration in an Airflow process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stack.local_airflow import OPENLINEAGE_URL_SETTING, PYTHON, LocalAirflow

READ_PROVIDER = """
import json
from airflow.providers.openlineage import conf
from airflow.providers.openlineage.plugins.openlineage import OpenLineageProviderPlugin
print(json.dumps({
    "disabled": conf.is_disabled(),
    "transport": conf.transport(),
    "namespace": conf.namespace(),
    "macros": sorted(m.__name__ for m in OpenLineageProviderPlugin.macros),
}))
"""


def provider_settings(airflow: LocalAirflow) -> dict[str, Any]:
    proc = subprocess.run(
        [str(PYTHON), "-c", READ_PROVIDER],
        env=airflow.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_the_provider_sends_to_the_configured_url_and_offers_the_parent_macros(
    tmp_path: Path,
) -> None:
    airflow = LocalAirflow(home=tmp_path / "home", openlineage_url="http://127.0.0.1:27109")
    settings = provider_settings(airflow)
    assert settings["disabled"] is False
    assert settings["transport"] == {"type": "http", "url": "http://127.0.0.1:27109", "timeout": 5}
    assert settings["namespace"] == "datakit"
    assert {"lineage_job_namespace", "lineage_job_name", "lineage_run_id"} <= set(
        settings["macros"]
    )


def test_without_a_url_the_provider_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OPENLINEAGE_URL_SETTING, raising=False)
    settings = provider_settings(LocalAirflow(home=tmp_path / "home"))
    assert settings["disabled"] is True
    assert settings["macros"] == []


def test_the_url_comes_from_the_environment_of_make_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OPENLINEAGE_URL_SETTING, "http://marquez.example:5000")
    airflow = LocalAirflow(home=tmp_path / "home")
    transport = json.loads(airflow.env()["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert transport["url"] == "http://marquez.example:5000"
