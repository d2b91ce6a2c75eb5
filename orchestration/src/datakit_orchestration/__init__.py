"""Orchestration of the datakit runner images: tenant spec → task plan → Airflow adapters → DAGs.

This package holds the first two layers, which never import Airflow: `spec` (the pydantic models
of `orchestration/tenants/<tenant>.yaml`), `loader` (reading and validating those files one by
one) and `plan` (`plan_tenant`: frozen, platform-neutral task records that the Docker and
Kubernetes adapters render into operators).
"""
