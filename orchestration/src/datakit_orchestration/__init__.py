"""Orchestration of the datakit runner images: tenant spec → task plan → Airflow adapters → DAGs.

`spec` (the pydantic models of `orchestration/tenants/<tenant>.yaml`), `loader` (reading and
validating those files one by one) and `plan` (`plan_tenant`: frozen, platform-neutral task
records) never import Airflow. `adapters` renders a task record as a stock DockerOperator or
KubernetesPodOperator (the only code importing the providers), `dags` builds each tenant's DAG,
and `dagfiles` writes the thin DAG files in `orchestration/dags/` (without importing Airflow).
"""
