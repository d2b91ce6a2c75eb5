"""Prometheus of the local stack: its configuration, written into the stack's folder, scraping the
metrics exporter (`python -m datakit_orchestration.metrics`) and evaluating the alert rules of
stack/prometheus/rules.yml.

Prometheus is Debian's package (stack/ensure-prometheus.sh installs it); supervisord runs the
binary (stack/supervisord.conf), never the package's systemd service. Prometheus reads no
environment in its scrape targets, so the ports are written into the file here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from stack import ROOT, StackError

RULES = ROOT / "stack" / "prometheus" / "rules.yml"
ENSURE = ROOT / "stack" / "ensure-prometheus.sh"
EXPORTER_JOB = "datakit"  # the job the rules' `up{job="datakit"}` looks at


def ensure_installed() -> None:
    """prometheus and promtool on PATH (Debian's package, installed when missing and root)."""
    if subprocess.run([str(ENSURE)]).returncode != 0:
        raise StackError(f"Prometheus is missing and `{ENSURE}` could not install it; see above.")


def write_config(
    folder: Path, *, exporter: str, listen: str, interval: str = "30s", rules: Path = RULES
) -> Path:
    """`folder`/prometheus.yml: scrape the exporter at `exporter` (host:port) and Prometheus
    itself at `listen` every `interval`, and evaluate `rules` as often."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": EXPORTER_JOB, "static_configs": [{"targets": [exporter]}]},
            {"job_name": "prometheus", "static_configs": [{"targets": [listen]}]},
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "prometheus.yml"
    path.write_text(
        "# Written by stack/prometheus.py on each `make up`; edit that, not this.\n"
        + yaml.safe_dump(config, sort_keys=False),
        encoding="utf-8",
    )
    return path


def command(config: Path, data: Path, listen: str) -> list[str]:
    """The Prometheus server of `config`, its time series in `data`, listening on `listen`
    (host:port)."""
    return [
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address={listen}",
        "--storage.tsdb.retention.time=15d",
    ]


def main(argv: list[str]) -> None:
    """`python -m stack.prometheus FOLDER LISTEN`: become the Prometheus server of
    FOLDER/prometheus.yml (supervisord's program `prometheus`; exec keeps its pid and signals)."""
    folder, listen = Path(argv[0]), argv[1]
    argv = command(folder / "prometheus.yml", folder / "data", listen)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
