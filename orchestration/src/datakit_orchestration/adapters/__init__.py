"""Adapters: a platform-neutral `TaskPlan` rendered as a stock Airflow operator.

The only code that imports the Airflow providers. `docker.docker_task` gives a `DockerOperator`
(local, CI, the demo), `kubernetes.kubernetes_task` a `KubernetesPodOperator` (production); both
take every setting from the plan, so their renderings can be compared field by field (the parity
tests). `runtime` picks one of them for the deployment, `assets` holds the Airflow Assets both
share, `retry` the retry policy both use, `secrets` how Docker tasks and notifiers read secret
references from Airflow, `notify` the failure and success notifications.
"""
