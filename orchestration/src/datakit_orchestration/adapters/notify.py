"""Failure and success notifications of a tenant's DAG runs: email and chat webhooks.

Email is the smtp provider's stock `SmtpNotifier` (installed with Airflow): it sends through the
Airflow connection `smtp_default`, whose extra `from_email` names the sender. Slack and Teams
incoming webhooks both accept a JSON `{"text": …}` POST, so one small notifier serves both; its
URL carries a token, so the tenant file holds a secret reference and the URL is read from the
tenant's Airflow Variable (see `adapters.secrets`) only when a notification is sent, and masked.

DAG-level callbacks run in Airflow's DAG processor with `dag`, `run_id` and `reason` in the
context; the templates use nothing else. A task that fails because it ran out of time also sends
its own notification, from the worker (`timeout_notifiers`): the DAG-level context does not say
why a task failed.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import BaseNotifier, Context

from datakit_orchestration.adapters.secrets import read_secret
from datakit_orchestration.plan import SecretRef, TenantPlan, runner_deadline

Outcome = Literal["failed", "succeeded"]
Callback = Callable[[Context], None]

TEXT = "datakit: `{{ dag.dag_id }}` run `{{ run_id }}` %s{{ ': ' ~ reason if reason }}"
HTML = (
    "<p>Airflow DAG <code>{{ dag.dag_id }}</code>, run <code>{{ run_id }}</code>: "
    "<strong>%s</strong>{{ ' (' ~ reason ~ ')' if reason }}.</p>"
)
TIMED_OUT = (
    "datakit: `{{ dag.dag_id }}` task `{{ ti.task_id }}` timed out: it ran past its execution "
    "timeout ({{ task.execution_timeout }}) in run `{{ run_id }}`"
)


class WebhookNotifier(BaseNotifier):
    """POST `{"text": …}` to a Slack or Teams incoming webhook whose URL is a tenant secret."""

    template_fields: Sequence[str] = ("text",)

    def __init__(self, *, tenant: str, url: SecretRef, text: str, timeout_s: float = 10) -> None:
        super().__init__()
        self.tenant = tenant
        self.url = url
        self.text = text
        self.timeout_s = timeout_s

    def notify(self, context: Context) -> None:
        url = read_secret(self.tenant, self.url)
        if urlsplit(url).scheme not in ("https", "http"):
            raise ValueError(
                f"secret `{self.url.name}/{self.url.key}` of tenant `{self.tenant}` is not an "
                "http(s) webhook URL; store the URL the chat tool gave for the webhook"
            )
        request = urllib.request.Request(
            url,
            data=json.dumps({"text": self.text}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        # A 4xx/5xx raises HTTPError, whose message has the status but not the URL.
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            response.read()


def notifiers(plan: TenantPlan, outcome: Outcome) -> list[Callback]:
    """The notifiers of `plan` for a run that `outcome`; empty when the tenant asks for none."""
    wanted = plan.notifications
    if not (wanted.on_failure if outcome == "failed" else wanted.on_success):
        return []
    found: list[Callback] = []
    if wanted.email:
        found.append(
            SmtpNotifier(
                to=list(wanted.email),
                subject=f"[datakit] {{{{ dag.dag_id }}}} {outcome}",
                html_content=HTML % outcome,
            )
        )
    found += [
        WebhookNotifier(tenant=plan.tenant, url=hook.url, text=TEXT % outcome)
        for hook in wanted.webhooks
    ]
    return found


class WhenTimedOut(BaseNotifier):
    """Sends `notifier` for a failed task only when it ran out of time: it ran at least as long
    as its runner may (`plan.runner_deadline`), which stops itself there, just before Airflow's
    execution timeout would."""

    def __init__(self, notifier: BaseNotifier) -> None:
        super().__init__()
        self.notifier = notifier

    def notify(self, context: Context) -> None:
        if timed_out(context):
            self.notifier(context)


def timed_out(context: Context) -> bool:
    task, ti = context["task"], context["ti"]
    limit = task.execution_timeout
    if limit is None or ti.start_date is None:
        return False
    ran = (datetime.now(UTC) - ti.start_date).total_seconds()
    return ran >= runner_deadline(int(limit.total_seconds()))


def timeout_notifiers(plan: TenantPlan) -> list[Callback]:
    """Task-level failure callbacks that say a task timed out; empty unless the tenant wants to
    hear about failures."""
    wanted = plan.notifications
    if not wanted.on_failure:
        return []
    found: list[Callback] = []
    if wanted.email:
        found.append(
            WhenTimedOut(
                SmtpNotifier(
                    to=list(wanted.email),
                    subject="[datakit] {{ dag.dag_id }}: {{ ti.task_id }} timed out",
                    html_content=f"<p>{TIMED_OUT}.</p>",
                )
            )
        )
    found += [
        WhenTimedOut(WebhookNotifier(tenant=plan.tenant, url=hook.url, text=TIMED_OUT))
        for hook in wanted.webhooks
    ]
    return found
