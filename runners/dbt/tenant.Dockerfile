# etl/dbt-<tenant>: the dbt runner with a tenant's own dbt project baked in at /opt/dbt_project,
# parsed here once exactly as the runner's built-in project is (datakit_dbt.baked), then checked
# against the tenant file (datakit_dbt.tenant_check). Built by `make tenant-image TENANT=<tenant>`
# (python -m datakit_orchestration.tenant_image), the project folder being the build context.
ARG DBT_RUNNER_IMAGE=etl/dbt-runner:0.0.0-dev
FROM ${DBT_RUNNER_IMAGE}

USER root
# The runner's env-only profile stays (a project's own profiles.yml is never read: no host or
# secret goes into an image); the built-in project makes room for the tenant's.
RUN set -eu; \
    mkdir -p /opt/dbt_profiles; \
    mv /opt/dbt_project/profiles.yml /opt/dbt_profiles/profiles.yml; \
    rm -rf /opt/dbt_project
COPY . /opt/dbt_project
ENV DK_PROJECT_DIR=/opt/dbt_project \
    DK_PROFILES_DIR=/opt/dbt_profiles
# The database, schema prefix and --vars of the tenant's dbt tasks: parsed with them, the runs use
# this manifest instead of parsing again. A dbt working directory copied in is removed first.
ARG DK_WAREHOUSE__DBNAME=warehouse
ARG DK_TENANT_SCHEMA_PREFIX=
ARG DK_BAKED_VARS=
RUN set -eu; \
    cd /opt/dbt_project; \
    rm -rf target logs target-baked dbt_packages; \
    python -m datakit_dbt.baked; \
    rm -rf /tmp/* target-baked/perf_info.json; \
    chmod -R a+rX /opt/dbt_project
# What the tenant file selects and publishes, checked against the parsed project.
ARG DK_TENANT_CHECK
RUN set -eu; python -m datakit_dbt.tenant_check; rm -rf /tmp/*

# The version the runner reports: the project's; OCI labels come from the build command.
ARG VERSION=0.0.0-dev
ENV DATAKIT_IMAGE_VERSION=${VERSION}
USER 10001:10001
