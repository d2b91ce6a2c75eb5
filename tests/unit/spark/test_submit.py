"""`datakit_spark.submit`: a PySpark job is checked before Spark starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from datakit_core.errors import ConfigError
from datakit_spark.submit import Job, check_job


def test_submit_needs_exactly_one_existing_job(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of"):
        check_job(Job())
    with pytest.raises(ConfigError, match="exactly one of"):
        check_job(Job(py_file=tmp_path / "a.py", module="b"))
    with pytest.raises(ConfigError, match=r"does not exist\. Mount it"):
        check_job(Job(py_file=tmp_path / "missing.py"))
    with pytest.raises(ConfigError, match="cannot be imported"):
        check_job(Job(module="no_such_module_anywhere"))
    job = tmp_path / "job.py"
    job.write_text("print('hi')\n")
    check_job(Job(py_file=job, args=("--day", "2025-01-31")))
