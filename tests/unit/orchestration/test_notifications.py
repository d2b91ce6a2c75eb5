"""Failure and success notifications, sent for real to a local SMTP server and a local webhook.

The shipped DAG files are parsed into a `DagBag` and the callbacks are run by the code Airflow's
DAG processor runs for a `DagCallbackRequest` (DAG-level callbacks execute there, with the parsed
DAG in the context). `airflow dags test` cannot be used for this: it hands the callbacks a
`SerializedDAG`, on which every templated notifier fails (apache/airflow#64649).
"""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from airflow.callbacks.callback_requests import DagCallbackRequest
from airflow.dag_processing.dagbag import DagBag
from airflow.dag_processing.processor import _execute_callbacks

from datakit_orchestration.adapters.secrets import variable_name
from datakit_orchestration.plan import SecretRef
from tests.kit.notifications import Mailbox
from tests.kit.paths import DAGS

RUN_ID = "scheduled__2024-06-01T00:00:00+00:00"


@pytest.fixture
def dag_processor(
    monkeypatch: pytest.MonkeyPatch, smtp_server: Mailbox, webhook: tuple[str, list[Any]]
) -> DagBag:
    """The shipped DAG folder parsed as a local deployment's DAG processor parses it: Docker
    runtime, `smtp_default` pointing at the local SMTP server, and globex's chat webhook URLs (its
    secrets) in Airflow Variables pointing at the local HTTP server."""
    url, _received = webhook
    monkeypatch.setenv("DATAKIT_RUNTIME", "docker")
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_server.connection())
    for key in ("slack-url", "teams-url"):
        name = variable_name("globex", SecretRef("globex-alerts", key))
        monkeypatch.setenv(f"AIRFLOW_VAR_{name.upper()}", f"{url}/{key}")
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag


def run_dag_callbacks(bag: DagBag, dag_id: str, *, failed: bool, reason: str) -> None:
    request = DagCallbackRequest(
        filepath=f"{dag_id.split('__')[0]}.py",
        bundle_name="dags-folder",
        bundle_version=None,
        dag_id=dag_id,
        run_id=RUN_ID,
        is_failure_callback=failed,
        msg=reason,
    )
    _execute_callbacks(bag, [request], structlog.get_logger())


def test_a_failed_acme_run_emails_the_data_team(
    dag_processor: DagBag, smtp_server: Mailbox, webhook: tuple[str, list[Any]]
) -> None:
    run_dag_callbacks(dag_processor, "acme__elt", failed=True, reason="task_failure")

    [(sender, recipients, message)] = smtp_server.messages
    assert (sender, recipients) == ("airflow@datakit.example", ["data-team@acme.example"])
    assert message["Subject"] == "[datakit] acme__elt failed"
    body = message.get_body(("html",))
    assert body is not None
    html = body.get_content()
    assert f"<code>acme__elt</code>, run <code>{RUN_ID}</code>" in html
    assert "<strong>failed</strong> (task_failure)" in html
    assert webhook[1] == []  # acme has no chat webhooks


def test_a_successful_acme_run_sends_nothing(
    dag_processor: DagBag, smtp_server: Mailbox, webhook: tuple[str, list[Any]]
) -> None:
    run_dag_callbacks(dag_processor, "acme__elt", failed=False, reason="success")
    assert smtp_server.messages == [] and webhook[1] == []  # acme: on_success is off


@pytest.mark.parametrize(("failed", "outcome"), [(True, "failed"), (False, "succeeded")])
def test_globex_hears_of_every_run_by_email_slack_and_teams(
    dag_processor: DagBag,
    smtp_server: Mailbox,
    webhook: tuple[str, list[Any]],
    capsys: pytest.CaptureFixture[str],
    failed: bool,
    outcome: str,
) -> None:
    reason = "task_failure" if failed else "success"
    run_dag_callbacks(dag_processor, "globex__elt", failed=failed, reason=reason)

    [(_, recipients, message)] = smtp_server.messages
    assert recipients == ["oncall@globex.example", "analytics@globex.example"]
    assert message["Subject"] == f"[datakit] globex__elt {outcome}"
    text = f"datakit: `globex__elt` run `{RUN_ID}` {outcome}: {reason}"
    assert webhook[1] == [{"text": text}, {"text": text}]  # Slack, then Teams
    logs = capsys.readouterr()
    assert "Callback failed" not in logs.out + logs.err
    assert "T0K3N" not in logs.out + logs.err  # the webhook URLs are secrets


def test_an_unreachable_webhook_fails_alone_and_the_email_still_goes(
    dag_processor: DagBag,
    smtp_server: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = variable_name("globex", SecretRef("globex-alerts", "slack-url"))
    monkeypatch.setenv(f"AIRFLOW_VAR_{name.upper()}", "http://127.0.0.1:9/hooks/T0K3N")
    run_dag_callbacks(dag_processor, "globex__elt", failed=True, reason="task_failure")

    assert len(smtp_server.messages) == 1
    logs = capsys.readouterr()
    assert "Callback failed" in logs.out + logs.err
    assert "Connection refused" in logs.out + logs.err
    assert "T0K3N" not in logs.out + logs.err
