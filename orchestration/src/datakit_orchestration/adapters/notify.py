"""Failure and success notifications of a tenant's DAG runs: email and chat webhooks.

Email is the smtp provider's stock `SmtpNotifier` (installed with Airflow): it sends through the
Airflow connection `smtp_default`, whose extra `from_email` names the sender. Slack and Teams
incoming webhooks both accept a JSON `{"text": …}` POST, so one small notifier serves both; its
URL carries a token, so the tenant file holds a secret reference and the URL is read from the
tenant's Airflow Variable (see `adapters.secrets`) only when a notification is sent, and masked.

DAG-level callbacks run in Airflow's DAG processor with `dag`, `run_id` and `reason` in the
context; the templates use nothing else.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Sequence
from typing import Literal
from urllib.parse import urlsplit

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import BaseNotifier, Context

from datakit_orchestration.adapters.secrets import read_secret
from datakit_orchestration.plan import SecretRef, TenantPlan

Outcome = Literal["failed", "succeeded"]
Callback = Callable[[Context], None]

TEXT = "datakit: `{{ dag.dag_id }}` run `{{ run_id }}` %s{{ ': ' ~ reason if reason }}"
HTML = (
    "<p>Airflow DAG <code>{{ dag.dag_id }}</code>, run <code>{{ run_id }}</code>: "
    "<strong>%s</strong>{{ ' (' ~ reason ~ ')' if reason }}.</p>"
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
