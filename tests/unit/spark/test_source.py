"""`datakit_spark.source`: what the source reads without Spark: the row encoding, each
partition's session, the JDBC URL, and the committed partitions streamed into the loader.

The parallel JDBC read itself runs in the built image (tests/contract/test_spark_image.py).
"""

from __future__ import annotations

import threading
from pathlib import Path

from datakit_core.schema import Column
from datakit_core.settings import load_config
from datakit_spark.config import SparkRunnerConfig
from datakit_spark.source import (
    _stream_committed,
    jdbc_url,
    row_as_copy_text,
    session_init_statement,
)


def test_rows_are_encoded_in_copy_text_format_by_the_source() -> None:
    columns = (Column("id", "bigint"), Column("Note", "text"), Column("price", "numeric"))
    types = {"id": "bigint", "Note": "text", "price": "money"}
    expression = row_as_copy_text(columns, types).as_string(None)
    fields = expression.split(" || E'\\t' || ")
    assert fields[0] == "coalesce(\"id\"::text, E'\\\\N')"  # integers never need escaping
    assert fields[1].startswith('coalesce(replace(replace(replace(replace("Note"::text, ')
    for escape in (
        "E'\\\\', E'\\\\\\\\'",
        "E'\\n', E'\\\\n'",
        "E'\\r', E'\\\\r'",
        "E'\\t', E'\\\\t'",
    ):
        assert escape in fields[1]
    assert fields[2] == "coalesce(\"price\"::numeric::text, E'\\\\N')"  # money: locale-free


def test_each_partition_joins_the_exported_snapshot() -> None:
    statement = session_init_statement("00000003-0000001B-1")
    assert statement.startswith(
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
        "SET TRANSACTION SNAPSHOT '00000003-0000001B-1';"
    )
    assert "SET TimeZone = 'UTC'" in statement


def test_jdbc_url_never_carries_the_password() -> None:
    config = load_config(
        SparkRunnerConfig,
        environ={
            "DK_SOURCE__HOST": "db",
            "DK_SOURCE__DBNAME": "erp",
            "DK_SOURCE__USER": "loader",
            "DK_SOURCE__PASSWORD": "s3cret-value",
            "DK_SOURCE__NAME": "erp",
            "DK_WAREHOUSE__HOST": "wh",
            "DK_WAREHOUSE__DBNAME": "w",
            "DK_WAREHOUSE__USER": "u",
        },
    )
    url = jdbc_url(config.source)
    assert url.startswith("jdbc:postgresql://db:5432/erp?sslmode=prefer&connectTimeout=10")
    assert "s3cret" not in url and "loader" not in url


def test_each_committed_partition_streams_once_and_whole(tmp_path: Path) -> None:
    (tmp_path / "part-00000-aaa-c000.txt").write_bytes(b"1\tone\n2\ttwo\n")
    (tmp_path / "part-00001-aaa-c000.txt").write_bytes(b"3\t\\N\n")
    (tmp_path / "part-00001-bbb-c000.txt").write_bytes(b"3\t\\N\n")  # a retried attempt
    (tmp_path / "_SUCCESS").write_bytes(b"")
    done = threading.Thread(target=lambda: None)
    done.start()
    done.join()
    blocks = list(_stream_committed(tmp_path, done))
    assert b"".join(b.data for b in blocks) == b"1\tone\n2\ttwo\n3\t\\N\n"
    assert sum(b.rows for b in blocks) == 3
