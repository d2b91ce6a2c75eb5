"""Airflow access per tenant, through the REST API of a real Airflow with the FAB auth manager.

The home is prepared by `stack.local_airflow` as `make up` prepares it, from the shipped tenant
files (orchestration/tenants/acme.yaml, globex.yaml and markets.yaml): users `admin`, `acme`,
`globex` and `markets`, roles `tenant_acme`, `tenant_globex` and `tenant_markets`. supervisord
runs the API server, scheduler, DAG processor and triggerer. Each user logs in at `/auth/token`
and calls `/api/v2/…` with its JWT.

Another tenant's DAG, runs, task instances and logs answer 403, never 404: the auth manager is
asked before the route looks anything up, so a tenant cannot even tell which DAG ids exist (a DAG
that does not exist answers 403 too). Lists (`/dags`, `/dags/~/dagRuns`) answer 200 with the
caller's own DAGs only.

No database is needed: acme's user unpauses its DAG, so that its first tasks run and write a log;
they fail at once (the tenant's Variables are not set), which is all the log test needs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import plan_tenant
from stack.local_airflow import LocalAirflow
from stack.supervisor import Supervisor, ensure_installed
from tests.kit.airflow import Reply, RestApi
from tests.kit.paths import TENANTS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("docker") is None, reason="no `docker` CLI: LocalAirflow tags runner images"
    ),
]
AIRFLOW_PORT = 28150  # below the ephemeral range, apart from `make up` and the other tests
ACME, GLOBEX, MARKETS = "acme__elt", "globex__elt", "markets__elt"
GLOBEX_RUN = "made_by_admin"  # a globex run, so its ids exist when acme asks for them
GLOBEX_TASK = plan_tenant(load_tenant(TENANTS / "globex.yaml")).tasks[0].task_id
TASK_LOG_WAIT_S = 300
FORBIDDEN = Reply(403, {"detail": "Forbidden"})  # the auth manager's refusal, whatever the route


@dataclass(frozen=True)
class Deployment:
    airflow: LocalAirflow
    api: dict[str, RestApi]  # user → the REST API as that user
    prepare_log: str  # everything stack.local_airflow logged while preparing the home


class _Messages(logging.Handler):
    """Keeps every message logged to it."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.kept.append(record.getMessage())


def _dag_ids(reply: Reply) -> set[str]:
    assert reply.status == 200, reply
    return {dag["dag_id"] for dag in reply.body["dags"]}


def _wait_for_dags(admin: RestApi, dag_ids: set[str]) -> None:
    """The DAG processor parses the folder on its own schedule after it reports healthy."""
    deadline = time.monotonic() + 180
    while not dag_ids <= (found := _dag_ids(admin.get("/api/v2/dags"))):
        assert time.monotonic() < deadline, f"only {found} parsed after 180 s"
        time.sleep(2)


def _eventually(ask: Callable[[], Reply], status: int) -> Reply:
    """`ask()` until it answers `status` (or 90 s pass): FAB keeps a user with its permissions for
    `[fab] cache_ttl` (30 s), so a changed role shows in the API server that much later."""
    deadline = time.monotonic() + 90
    while (reply := ask()).status != status and time.monotonic() < deadline:
        time.sleep(3)
    return reply


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("access")
    airflow = LocalAirflow(
        home=root / "home", tenants=TENANTS, dags=root / "dags", port=AIRFLOW_PORT
    )
    messages, logger = _Messages(), logging.getLogger("stack")
    level = logger.level
    logger.addHandler(messages)
    logger.setLevel(logging.INFO)
    try:
        airflow.prepare({})  # no Variables: acme's tasks fail at once, after writing a log
    finally:
        logger.removeHandler(messages)
        logger.setLevel(level)
    ensure_installed()
    supervisor = Supervisor(root / "state", airflow.env())
    supervisor.start()
    try:
        airflow.wait_healthy(240)
        api = {user: RestApi(airflow.url, airflow.token(user)) for user in airflow.passwords()}
        _wait_for_dags(api["admin"], {ACME, GLOBEX})
        created = api["admin"].call(
            "POST",
            f"/api/v2/dags/{GLOBEX}/dagRuns",
            {"dag_run_id": GLOBEX_RUN, "logical_date": None},
        )
        assert created.status == 200, created
        yield Deployment(airflow, api, "\n".join(messages.kept))
    finally:
        supervisor.stop()


def test_each_tenant_lists_only_its_own_dags_and_admin_lists_all(deployment: Deployment) -> None:
    api = deployment.api
    assert _dag_ids(api["admin"].get("/api/v2/dags")) == {ACME, GLOBEX, MARKETS}
    assert _dag_ids(api["acme"].get("/api/v2/dags")) == {ACME}
    assert _dag_ids(api["globex"].get("/api/v2/dags")) == {GLOBEX}
    assert api["acme"].get("/api/v2/dags").body["total_entries"] == 1


def test_acme_sees_triggers_and_reads_the_runs_and_a_task_log_of_its_dag(
    deployment: Deployment,
) -> None:
    acme = deployment.api["acme"]
    assert acme.get(f"/api/v2/dags/{ACME}").status == 200
    run = {"dag_run_id": "triggered_by_acme", "logical_date": None}
    triggered = acme.call("POST", f"/api/v2/dags/{ACME}/dagRuns", run)
    assert triggered.status == 200, triggered
    assert acme.call("PATCH", f"/api/v2/dags/{ACME}", {"is_paused": False}).status == 200
    runs = acme.get(f"/api/v2/dags/{ACME}/dagRuns")
    assert runs.status == 200, runs
    assert "triggered_by_acme" in {r["dag_run_id"] for r in runs.body["dag_runs"]}
    # The list across DAGs holds acme's runs only, though globex has one.
    everyone = acme.get("/api/v2/dags/~/dagRuns")
    assert everyone.status == 200, everyone
    assert {r["dag_id"] for r in everyone.body["dag_runs"]} == {ACME}

    # Unpaused, the DAG runs (its scheduled run first, the triggered one after it:
    # max_active_runs=1); the first tasks to finish a try wrote a log.
    deadline = time.monotonic() + TASK_LOG_WAIT_S
    while True:
        listed = acme.get(f"/api/v2/dags/{ACME}/dagRuns/~/taskInstances")
        assert listed.status == 200, listed
        ran = [
            ti
            for ti in listed.body["task_instances"]
            if ti["try_number"] >= 1 and ti["state"] in ("failed", "up_for_retry")
        ]
        if ran:
            break
        assert time.monotonic() < deadline, f"no task finished a try in {TASK_LOG_WAIT_S} s"
        time.sleep(3)
    log_path = (
        f"/api/v2/dags/{ACME}/dagRuns/{ran[0]['dag_run_id']}/taskInstances/{ran[0]['task_id']}"
        "/logs/1"
    )
    log = acme.get(log_path)
    assert log.status == 200, log
    # The task's own log, as the task wrote it: it failed on its unset Variables.
    events = {entry.get("event") for entry in log.body["content"] if isinstance(entry, dict)}
    assert "Task failed with exception" in events, log
    assert deployment.api["admin"].get(log_path).status == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/v2/dags/{GLOBEX}", None),
        ("PATCH", f"/api/v2/dags/{GLOBEX}", {"is_paused": False}),
        ("GET", f"/api/v2/dags/{GLOBEX}/dagRuns", None),
        ("GET", f"/api/v2/dags/{GLOBEX}/dagRuns/{GLOBEX_RUN}", None),
        ("POST", f"/api/v2/dags/{GLOBEX}/dagRuns", {"dag_run_id": "by_acme", "logical_date": None}),
        ("GET", f"/api/v2/dags/{GLOBEX}/dagRuns/{GLOBEX_RUN}/taskInstances", None),
        ("GET", f"/api/v2/dags/{GLOBEX}/dagRuns/{GLOBEX_RUN}/taskInstances/{GLOBEX_TASK}", None),
        (
            "GET",
            f"/api/v2/dags/{GLOBEX}/dagRuns/{GLOBEX_RUN}/taskInstances/{GLOBEX_TASK}/logs/1",
            None,
        ),
        ("GET", "/api/v2/dags/no_such__elt", None),  # existence is not revealed either
    ],
)
def test_acme_gets_403_on_globex_dag_runs_and_logs(
    deployment: Deployment, method: str, path: str, body: object
) -> None:
    assert deployment.api["acme"].call(method, path, body) == FORBIDDEN
    if method == "GET" and "no_such" not in path and not path.endswith("/logs/1"):
        assert deployment.api["admin"].get(path).status == 200  # it exists: admin reads it


def test_globex_gets_403_on_acme_and_triggers_its_own(deployment: Deployment) -> None:
    globex = deployment.api["globex"]
    assert globex.get(f"/api/v2/dags/{ACME}") == FORBIDDEN
    run = {"dag_run_id": "by_globex", "logical_date": None}
    assert globex.call("POST", f"/api/v2/dags/{ACME}/dagRuns", run) == FORBIDDEN
    assert globex.get(f"/api/v2/dags/{ACME}/dagRuns") == FORBIDDEN
    assert globex.get(f"/api/v2/dags/{GLOBEX}").status == 200
    own = globex.call("POST", f"/api/v2/dags/{GLOBEX}/dagRuns", run)
    assert own.status == 200, own
    assert globex.get(f"/api/v2/dags/{GLOBEX}/dagRuns/by_globex").status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/connections",
        "/api/v2/variables",
        "/api/v2/pools",
        "/api/v2/config",
        "/api/v2/importErrors",
        "/api/v2/eventLogs",
        "/api/v2/assets",
        "/auth/fab/v1/users",
    ],
)
def test_tenant_users_reach_no_admin_menu(deployment: Deployment, path: str) -> None:
    for user in ("acme", "globex"):
        assert deployment.api[user].get(path) == FORBIDDEN, (user, path)
    admin = deployment.api["admin"].get(path)
    assert admin != FORBIDDEN
    # Airflow does not expose its configuration to anyone (`[api] expose_config`), after the
    # auth manager let the admin through.
    assert admin.status == (403 if path == "/api/v2/config" else 200), admin


def test_the_api_refuses_an_anonymous_caller(deployment: Deployment) -> None:
    assert RestApi(deployment.airflow.url).get("/api/v2/dags").status == 401


def test_granting_again_changes_nothing_and_no_password_leaves_its_file(
    deployment: Deployment,
) -> None:
    airflow = deployment.airflow
    passwords = airflow.passwords()
    assert set(passwords) == {"admin", "acme", "globex", "markets"}
    assert airflow.grant_access() == []
    assert airflow.passwords() == passwords
    assert stat.S_IMODE(os.stat(airflow.password_file).st_mode) == 0o600
    assert "user `acme`: created with role `tenant_acme`" in deployment.prepare_log
    for password in passwords.values():
        assert password not in deployment.prepare_log
        for process in psutil.process_iter(["cmdline"]):
            assert password not in " ".join(process.info["cmdline"] or []), process


def test_granting_again_revokes_a_permission_added_by_hand(deployment: Deployment) -> None:
    airflow, acme = deployment.airflow, deployment.api["acme"]
    airflow.airflow("roles", "add-perms", "tenant_acme", "-r", f"DAG:{GLOBEX}", "-a", "can_read")
    assert _eventually(lambda: acme.get(f"/api/v2/dags/{GLOBEX}"), 200).status == 200
    assert airflow.grant_access() == [f"role `tenant_acme`: revoked can_read on DAG:{GLOBEX}"]
    assert _eventually(lambda: acme.get(f"/api/v2/dags/{GLOBEX}"), 403) == FORBIDDEN


def test_a_tenant_file_removed_takes_its_role_and_login_with_it(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Last in this module: it removes globex's access from the shared deployment."""
    login = {"username": "globex", "password": deployment.airflow.passwords()["globex"]}
    anonymous = RestApi(deployment.airflow.url)
    assert anonymous.call("POST", "/auth/token", login).status == 201
    shutil.copy(TENANTS / "acme.yaml", tmp_path / "acme.yaml")
    only_acme = dataclasses.replace(deployment.airflow, tenants=tmp_path)
    assert only_acme.grant_access() == [
        "role `tenant_globex`: deleted (its tenant file is gone)",
        "role `tenant_markets`: deleted (its tenant file is gone)",
        "user `globex`: deactivated (no role left)",
        "user `markets`: deactivated (no role left)",
    ]
    assert anonymous.call("POST", "/auth/token", login).status == 401
    assert "globex" not in only_acme.passwords()
    assert _dag_ids(RestApi(only_acme.url, only_acme.token("acme")).get("/api/v2/dags")) == {ACME}
