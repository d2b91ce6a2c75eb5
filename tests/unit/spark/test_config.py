"""`datakit_spark.config`: the Spark settings, validated all at once."""

from __future__ import annotations

import pytest

from datakit_core.errors import ConfigError
from datakit_core.settings import load_config
from datakit_spark.config import SubmitConfig


def test_master_and_kubernetes_together_are_a_config_error() -> None:
    env = {
        "DK_SPARK__KUBERNETES__NAMESPACE": "acme",
        "DK_SPARK__KUBERNETES__SERVICE_ACCOUNT": "acme-runner",
        "DK_SPARK__MASTER": "spark://host:7077",
    }
    with pytest.raises(ConfigError, match=r"either `spark\.master` or `spark\.kubernetes`"):
        load_config(SubmitConfig, environ=env)


def test_bad_spark_settings_list_every_problem() -> None:
    env = {"DK_SPARK__PARTITIONS": "0", "DK_SPARK__DRIVER_MEMORY": "lots"}
    with pytest.raises(ConfigError) as error:
        load_config(SubmitConfig, environ=env)
    message = str(error.value)
    assert "(2 problems)" in message
    assert "spark.partitions" in message and "spark.driver_memory" in message
