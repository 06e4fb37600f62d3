import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fake_node

from fake_node import FakeGrid, FakeNode  # noqa: E402
from pfedprompt_server.cell import CellOptions, CellSpec, run_cell  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def run(method, nodes, rounds=2, seed=1, shots=2, **config):
    """One cell over FakeNodes; returns (CellResult, grid)."""
    grid = FakeGrid(nodes)
    run_config = json.dumps({"federation": {"rounds": rounds}, **config})
    result, _final_state = run_cell(grid, CellSpec(method, seed, shots), run_config, CellOptions(wait_for_nodes=0))
    return result, grid


@pytest.fixture
def nodes3():
    return [FakeNode(c, 3) for c in range(3)]
