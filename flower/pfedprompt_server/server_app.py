"""The ServerApp: runs the grid of an experiment config over the connected `pfedprompt node`s.

Run config keys (pyproject.toml, or `flwr run --run-config`):
  config            path to the experiment config (JSON or YAML), as `pfedprompt run --config` takes it
  output            results folder (default: the config's `output`, else runs/<name>)
  describe-timeout  seconds a node may take to describe a cell (it may compute features first)
  wait-for-nodes    seconds to wait for the nodes of all clients to connect
  poll-interval     seconds between two looks for replies (Flower's own Grid waits 3 s)
"""

from __future__ import annotations

import json
from logging import INFO

from flwr.app import Context
from flwr.common import log
from flwr.serverapp import Grid, ServerApp

from .cell import CellOptions, run_cell
from .experiment import cells, load_config, output_dir
from .failures import FederationError
from .polling import PolledGrid
from .results import defaults_of_run, record_cell, write_final_state

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    run = context.run_config
    grid = PolledGrid(grid, float(run.get("poll-interval", 0.2)))  # type: ignore[assignment]
    path = str(run.get("config", ""))
    if not path:
        raise FederationError('no experiment config: pass --run-config "config=\'/path/to/experiment.yaml\'"')
    config = load_config(path)
    run_config = json.dumps(config)  # as written: each node validates it with pfedprompt run's schema
    out = output_dir(config, path, str(run.get("output", "")))
    options = CellOptions(describe_timeout=float(run.get("describe-timeout", 3600)), wait_for_nodes=float(run.get("wait-for-nodes", 60)))
    grid_cells = cells(config)
    for index, spec in enumerate(grid_cells, start=1):
        log(INFO, "cell %d/%d: %s, seed %d, %d shots", index, len(grid_cells), spec.method, spec.seed, spec.shots)
        result, state = run_cell(grid, spec, run_config, options)
        write_final_state(out, result["id"], state)
        written = record_cell(out, result, defaults_of_run(config))
        log(INFO, "%s: mean accuracy %.4f → %s", result["id"], result["meanAccuracy"], written)
