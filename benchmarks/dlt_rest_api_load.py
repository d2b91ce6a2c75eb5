"""dlt's `rest_api` source into its `postgres` destination: the side of `bench_http.py` that runs
in dlt's own venv (benchmarks/data/dlt-venv), so the project's venv never holds dlt.

    dlt-venv/bin/python benchmarks/dlt_rest_api_load.py URL PAGE_SIZE DATASET WORKDIR NESTING FORMAT

Reads every page of `URL` (`?page=1..&limit=PAGE_SIZE`, records under `data.items`, the pages end
with an empty one), replaces the table `items` of schema `DATASET`, and prints one JSON line with
the seconds of dlt's three steps. The warehouse comes from dlt's own variables
(`DESTINATION__POSTGRES__CREDENTIALS__*`), its password never from argv. NESTING is dlt's
`max_table_nesting` (`default`: dlt's default, nested lists become child tables); FORMAT its
loader file format (`default`: `insert_values`, INSERT statements; `csv`: COPY).
"""

from __future__ import annotations

import json
import sys
import time

import dlt  # type: ignore[import-not-found]  # only in dlt's venv
from dlt.sources.rest_api import rest_api_source  # type: ignore[import-not-found]


def main(
    url: str,
    page_size: int,
    dataset: str,
    workdir: str,
    nesting: int | None,
    file_format: str | None,
) -> None:
    base_url, path = url.rsplit("/", 2)[0], "/".join(url.rsplit("/", 2)[1:])
    source = rest_api_source(
        {
            "client": {
                "base_url": base_url + "/",
                "paginator": {
                    "type": "page_number",
                    "base_page": 1,
                    "page_param": "page",
                    "total_path": None,
                    "stop_after_empty_page": True,
                },
            },
            "resource_defaults": {"write_disposition": "replace"},
            "resources": [
                {
                    "name": "items",
                    "endpoint": {
                        "path": path,
                        "params": {"limit": page_size},
                        "data_selector": "data.items",
                    },
                }
            ],
        },
        max_table_nesting=nesting,
    )
    pipeline = dlt.pipeline(
        pipeline_name=dataset,
        destination="postgres",
        dataset_name=dataset,
        pipelines_dir=workdir,
    )
    seconds = {}
    started = time.monotonic()
    pipeline.extract(source, loader_file_format=file_format)
    seconds["extract"] = time.monotonic() - started
    started = time.monotonic()
    pipeline.normalize()
    seconds["normalize"] = time.monotonic() - started
    started = time.monotonic()
    pipeline.load()
    seconds["load"] = time.monotonic() - started
    print(json.dumps({"seconds": seconds, "dlt": dlt.__version__}))


if __name__ == "__main__":
    url, page_size, dataset, workdir, nesting, file_format = sys.argv[1:7]
    main(
        url,
        int(page_size),
        dataset,
        workdir,
        None if nesting == "default" else int(nesting),
        None if file_format == "default" else file_format,
    )
