"""The test kit: what several test modules share, one concept per module.

    paths          the checkout's folders and files the tests read
    databases      PostgreSQL servers and throwaway databases (`Server`, `Database`)
    runners        running an installed runner CLI as a shell would (`run_runner`, `Outcome`)
    docker         running a built runner image as a user's `docker run` would
    network        local ports: free ones, and a TCP server that never answers
    source_tables  the source tables the runners are tested on (every type, orders)
    tpch           the TPC-H query Gold must answer like the source
    tenants        tenant files: the shipped ones, their plans, a small valid one to break
    airflow        a throwaway AIRFLOW_HOME, a DagBag parsed in a clean subprocess
    kubernetes     pods as the KubernetesPodOperator submits them
    image_lock     image-lock entries for the lock and DAG tests
    notifications  local SMTP and webhook servers that keep what they receive
    sqlserver      SQL Server catalog columns and source settings, without a server
    astro          the Astro project: its folder, runtime image and the CLI's services

conftest.py files hold only fixtures, built from these modules; test modules import them.
"""
