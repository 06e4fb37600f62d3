"""The experiment config as `pfedprompt run` takes it, read only as far as the server needs:
the grid of cells and where results go. The nodes validate the whole config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .cell import CellSpec
from .failures import FederationError

# The defaults of src/experiment/config.ts for the fields the server reads (tests/test_experiment.py checks them).
DEFAULT_NAME = "experiment"
DEFAULT_METHODS = ["zeroshot", "local-coop", "promptfl", "promptfl-ft", "promptper", "promptprox", "promptamp", "pfedprompt"]
DEFAULT_SEEDS = [1, 2, 3]
DEFAULT_SHOTS = [16]


def load_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise FederationError(f"{path}: cannot read the experiment config ({err.strerror})") from err
    try:
        config = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise FederationError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} ({err})") from err
    if not isinstance(config, dict):
        raise FederationError(f"{path}: expected a mapping of config fields")
    return config


def cells(config: dict[str, Any]) -> list[CellSpec]:
    """shots × methods × seeds, in the order runner.ts runs them; one dataset per Flower run."""
    data = config.get("data") or {}
    datasets = data.get("datasets")
    if isinstance(datasets, list) and len(datasets) > 1:
        raise FederationError(f"the config names {len(datasets)} datasets; a Flower run has one (the nodes hold it): run one config per dataset")
    shots = data.get("shots", DEFAULT_SHOTS)
    return [
        CellSpec(method=m, seed=int(seed), shots=int(s))
        for s in shots
        for m in config.get("methods", DEFAULT_METHODS)
        for seed in config.get("seeds", DEFAULT_SEEDS)
    ]


def output_dir(config: dict[str, Any], config_path: str | Path, override: str = "") -> Path:
    """`output` from the run config, else the config's own (relative to its file, as config.ts resolves it), else runs/<name>."""
    if override:
        return Path(override).resolve()
    if config.get("output"):
        return (Path(config_path).resolve().parent / config["output"]).resolve()
    return (Path("runs") / str(config.get("name", DEFAULT_NAME))).resolve()
