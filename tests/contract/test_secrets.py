"""A password fed through every error path of every runner image never reaches stdout, stderr or
the XCom file.

The paths: the source refuses the connection, the source or the warehouse refuses the password,
the source fails in the middle of the stream, and a dbt model fails. In the last two the password
really is in what the failing side says (a source view and a dbt model that put it into their
error message), so the test shows the masking at work, not merely a driver that keeps quiet (dbt
masks its own profile's password too; the source's error passes only the runner's mask).
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from datakit_contract.result import RunResult
from tests.kit.databases import Database
from tests.kit.docker import docker_run, runner_image

pytestmark = pytest.mark.contract

# A wrong password with a quote, a backslash and non-ASCII: JSON escapes each differently.
WRONG = 'Wr0ng-"pass\\word"-é-5c1d'
SOURCE_RUNNERS = ("postgres", "spark")  # sqlserver: no server here, see its own test below


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str
    xcom: str

    @property
    def result(self) -> RunResult:
        return RunResult.from_stdout(self.stdout)

    def assert_never_shows(self, secret: str) -> None:
        forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
        for where, text in (("stdout", self.stdout), ("stderr", self.stderr), ("xcom", self.xcom)):
            shown = [form for form in forms if form in text]
            assert not shown, f"the secret reached {where}: {text[-2000:]}"
        assert RunResult.model_validate_json(self.xcom) == self.result


def run(image: str, args: list[str], env: dict[str, str], tmp_path: Path, **kw: object) -> Ran:
    xcom = tmp_path / f"xcom-{len(list(tmp_path.glob('xcom-*')))}"
    xcom.mkdir()
    xcom.chmod(0o777)  # the runner writes it as uid 10001
    volumes = [f"{xcom}:/airflow/xcom", *kw.get("volumes", [])]  # type: ignore[misc]
    done = docker_run(image, args, {**env, "DK_LOG_FORMAT": "json"}, volumes=volumes)
    assert isinstance(done, subprocess.CompletedProcess)
    return Ran(done.returncode, done.stdout, done.stderr, (xcom / "return.json").read_text())


@pytest.fixture
def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


@pytest.fixture
def env(source_db: Database, warehouse_db: Database) -> dict[str, str]:
    return {**source_db.env("SOURCE"), **warehouse_db.env("WAREHOUSE"), "DK_SOURCE__NAME": "erp"}


@pytest.fixture(params=SOURCE_RUNNERS)
def source_image(request: pytest.FixtureRequest) -> Iterator[str]:
    yield runner_image(request.param)


def test_a_refused_source_connection(
    source_image: str, env: dict[str, str], closed_port: int, tmp_path: Path
) -> None:
    env = {**env, "DK_SOURCE__PORT": str(closed_port), "DK_SOURCE__PASSWORD": WRONG}
    ran = run(source_image, ["extract", "--table", "orders"], env, tmp_path)
    assert ran.code == 3, ran.stderr[-2000:]
    ran.assert_never_shows(WRONG)


@pytest.mark.parametrize("side", ["SOURCE", "WAREHOUSE"])
def test_a_refused_password(
    source_image: str, env: dict[str, str], side: str, tmp_path: Path
) -> None:
    ran = run(source_image, ["check"], {**env, f"DK_{side}__PASSWORD": WRONG}, tmp_path)
    assert ran.code == 3, ran.stderr[-2000:]
    assert "password authentication failed" in ran.result.error.message  # type: ignore[union-attr]
    ran.assert_never_shows(WRONG)


def test_a_source_error_mid_stream(
    source_image: str, env: dict[str, str], source_db: Database, tmp_path: Path
) -> None:
    password = env["DK_SOURCE__PASSWORD"]
    source_db.execute(
        "create function leak(g int) returns int language plpgsql as $$ begin "
        f"if g = 9000 then raise exception 'cannot read row % with %', g, '{password}'; end if; "
        "return g; end $$"
    )
    source_db.execute(
        "create table numbers (id int primary key); "
        "insert into numbers select generate_series(1, 10000); "
        "create view fragile as select id, leak(id) as copy from numbers"
    )
    ran = run(source_image, ["extract", "--table", "fragile"], env, tmp_path)
    assert ran.code == 1, ran.stderr[-2000:]
    (table,) = ran.result.tables
    assert "cannot read row 9000 with ***" in (table.error or "")
    ran.assert_never_shows(password)


def test_sqlserver_a_refused_connection(
    env: dict[str, str], closed_port: int, tmp_path: Path
) -> None:
    source = {
        "DK_SOURCE__NAME": "crm",
        "DK_SOURCE__HOST": "127.0.0.1",
        "DK_SOURCE__PORT": str(closed_port),
        "DK_SOURCE__DATABASE": "CRM",
        "DK_SOURCE__USER": "etl",
        "DK_SOURCE__PASSWORD": WRONG,
    }
    warehouse = {k: v for k, v in env.items() if k.startswith("DK_WAREHOUSE__")}
    ran = run(runner_image("sqlserver"), ["check"], {**source, **warehouse}, tmp_path)
    assert ran.code == 3, ran.stderr[-2000:]
    ran.assert_never_shows(WRONG)


@pytest.fixture
def dbt_env(warehouse_db: Database) -> dict[str, str]:
    return warehouse_db.env("WAREHOUSE")


def test_dbt_a_refused_connection_and_password(
    dbt_env: dict[str, str], closed_port: int, tmp_path: Path
) -> None:
    image = runner_image("dbt")
    for env in (
        {**dbt_env, "DK_WAREHOUSE__PORT": str(closed_port), "DK_WAREHOUSE__PASSWORD": WRONG},
        {**dbt_env, "DK_WAREHOUSE__PASSWORD": WRONG},
    ):
        ran = run(image, ["build"], env, tmp_path)
        assert ran.code == 3, ran.stderr[-2000:]
        ran.assert_never_shows(WRONG)


def test_dbt_a_failing_model(dbt_env: dict[str, str], tmp_path: Path) -> None:
    """A model that reads the password from the environment and fails with it in the error."""
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: leaky\nversion: '1.0.0'\nprofile: datakit\nmodel-paths: [models]\n"
    )
    (project / "models" / "leak.sql").write_text(
        "select cast('{{ env_var(\"DK_WAREHOUSE__PASSWORD\") }}' as integer) as n\n"
    )
    for path in (tmp_path, project, project / "models"):
        path.chmod(0o755)
    ran = run(
        runner_image("dbt"),
        ["run", "--project-dir", "/project"],
        dbt_env,
        tmp_path,
        volumes=[f"{project}:/project:ro"],
    )
    assert ran.code == 1, ran.stderr[-2000:]
    assert ran.result.output and ran.result.output["failed"] == ["model.leaky.leak"]
    (node,) = ran.result.output["nodes"]
    assert "invalid input syntax for type integer" in node["message"]  # the password's place
    ran.assert_never_shows(dbt_env["DK_WAREHOUSE__PASSWORD"])
