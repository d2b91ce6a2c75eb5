"""The runner contract, defined once.

Every runner image keeps it and orchestration relies on it, so each element lives here and
nowhere else: exit codes (`exit_codes`), the `RunResult` line and its parser (`result`), table
specs and their enums (`tables`), name patterns and schema names (`names`), the runner
environment variables (`env`) and the extract flags (`flags`). pydantic is the only dependency:
core, every runner, orchestration (inside Airflow), tests, the demo and the benchmarks import it.
"""
