"""Secret references read from Airflow: how a local (Docker) runner and a notifier get a value.

On Kubernetes a runner reads its secrets itself, through Secret key refs in its pod. Locally there
is no Secret store but Airflow's own, so every `SecretRef` of a tenant names one Airflow Variable:

    datakit__<tenant>__<secret name>__<key>     (lower case; `-` and `.` become `_`)

`{name: acme-erp, key: password}` of tenant `acme` is Variable `datakit__acme__acme_erp__password`,
which the environment can hold as `AIRFLOW_VAR_DATAKIT__ACME__ACME_ERP__PASSWORD`, and a secrets
backend (Vault, a cloud secret manager) can serve under the same name. The tenant is part of the
name because Kubernetes Secret names are per namespace, i.e. per tenant: two tenants may both
reference `warehouse/password` and mean two different passwords.

Values are read when a task runs, never when a DAG is parsed, and are registered with Airflow's
secrets masker so they are redacted from every log line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from airflow.sdk import Variable
from airflow.sdk.log import mask_secret

from datakit_orchestration.plan import SecretEnv, SecretRef, variable_name


def check_variable_names(tenant: str, refs: Iterable[SecretRef]) -> None:
    """Refuse two references that would share one Variable (`a-b` and `a.b` both map to `a_b`):
    each would silently read the other's value."""
    seen: dict[str, SecretRef] = {}
    for ref in refs:
        name = variable_name(tenant, ref)
        other = seen.setdefault(name, ref)
        if other != ref:
            raise ValueError(
                f"secrets `{other.name}/{other.key}` and `{ref.name}/{ref.key}` of tenant "
                f"`{tenant}` would both be read from Airflow Variable `{name}`; rename one "
                "(names may differ in more than `-`, `.` and letter case)"
            )


def read_secret(tenant: str, ref: SecretRef) -> str:
    """The secret's value from its Airflow Variable, masked in every log from now on."""
    name = variable_name(tenant, ref)
    value = Variable.get(name, default=None)
    if value is None:
        raise LookupError(
            f"secret `{ref.name}/{ref.key}` of tenant `{tenant}` is not set: create Airflow "
            f"Variable `{name}` (or set `AIRFLOW_VAR_{name.upper()}` in Airflow's environment)"
        )
    text = str(value)
    mask_secret(text)  # the SDK masks Variables only under names that look secret
    return text


class SecretEnvironment(Mapping[str, str]):
    """Environment variables whose values are read from Airflow only when looked up.

    The variable names are known when the DAG is parsed; the values are fetched when the
    operator builds the container's environment, so they never reach the DAG file's objects,
    the serialized DAG, the rendered template fields or the UI.
    """

    def __init__(self, tenant: str, secrets: Iterable[SecretEnv]) -> None:
        self.tenant = tenant
        self.refs = {secret.env_var: secret.secret for secret in secrets}

    def __getitem__(self, env_var: str) -> str:
        return read_secret(self.tenant, self.refs[env_var])

    def __iter__(self) -> Iterator[str]:
        return iter(self.refs)

    def __len__(self) -> int:
        return len(self.refs)

    def __repr__(self) -> str:  # names and references only, never values
        refs = ", ".join(f"{env}={r.name}/{r.key}" for env, r in self.refs.items())
        return f"SecretEnvironment({self.tenant}: {refs})"
