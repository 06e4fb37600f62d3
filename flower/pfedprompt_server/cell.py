"""One cell of the grid (method, seed, shots) over Flower, as engine.ts runs it in one process:
describe → rounds (train, aggregate, optional per-round test) → finish → memory selection → final test.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from flwr.app import ConfigRecord
from flwr.serverapp import Grid

from . import protocol
from .cohort import describe
from .evaluation import evaluate, test_accuracies, val_accuracies
from .exchange import Participation
from .failures import Failure, FederationError
from .memory import mean, select_memory
from .strategies import strategy_for


@dataclass(frozen=True)
class CellSpec:
    method: str
    seed: int
    shots: int

    def as_json(self) -> dict[str, Any]:
        return {"method": self.method, "seed": self.seed, "shots": self.shots}


@dataclass(frozen=True)
class CellOptions:
    describe_timeout: float = 3600.0  # a node may load its model and compute features before it answers
    wait_for_nodes: float = 60.0  # how long to wait for the nodes of all clients to connect


def run_cell(grid: Grid, spec: CellSpec, run_config: str, options: CellOptions = CellOptions()) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cell's CellResult (src/report/results.ts), with `failures` added when a node was left out,
    and the server's final state (name → array)."""
    started = time.perf_counter()
    cohort, described = describe(grid, run_config, spec.as_json(), options.describe_timeout, options.wait_for_nodes)
    participation = Participation(cohort, run_config, spec.as_json())
    participation.failures.extend(described)
    strategy = strategy_for(participation)
    facts = cohort.facts
    state = cohort.initial
    rounds: list[dict[str, Any]] = []

    if facts["trainsPrompt"]:
        for server_round in range(1, cohort.rounds + 1):
            round_started = time.perf_counter()
            messages = strategy.configure_train(server_round, state, ConfigRecord(), grid)
            replies = grid.send_and_receive(messages, timeout=cohort.timeout)
            aggregated, _ = strategy.aggregate_train(server_round, replies)
            trained = participation.last
            if aggregated is not None:
                state = aggregated
            record: dict[str, Any] = {"round": server_round}
            if facts["evaluateEachRound"]:
                stage = f"round {server_round} evaluation"
                accuracies = test_accuracies(evaluate(grid, participation, strategy, state, server_round, stage, "test"), participation, stage)
                if accuracies:
                    record["meanAccuracy"] = mean(list(accuracies.values()))
            loss = mean([float(m["train-loss"]) for m in trained.metrics.values() if "train-loss" in m])
            if math.isfinite(loss):
                record["trainLoss"] = loss
            record.update(bytesUp=trained.bytes_up, bytesDown=trained.bytes_down, seconds=time.perf_counter() - round_started)
            rounds.append(record)

    after = cohort.rounds + 1
    if facts["hasFinish"]:
        messages = participation.messages(protocol.FINISH, "finish", cohort.clients, lambda c: strategy.download(state, c), after, count_download=False)
        participation.receive(grid.send_and_receive(messages, timeout=cohort.timeout))

    selection = None
    if facts["memoryGrid"]:
        memory_grid = [dict(g) for g in facts["memoryGrid"]]  # the memory's (α, β), or a method's own candidates
        metrics = evaluate(grid, participation, strategy, state, after, "memory selection", "val", memory_choices=memory_grid)
        base = facts["cellConfig"]["methodOptions"]["memory"]
        selection = select_memory(base, memory_grid, [_choice_accuracies(c, m, len(memory_grid), participation) for c, m in sorted(metrics.items())])
    memory = {"memory_choice": selection["chosen"]} if selection else {}
    final = test_accuracies(evaluate(grid, participation, strategy, state, after, "final evaluation", "test", **memory), participation, "final evaluation")
    if not final:
        raise FederationError(f"{facts['cell']['id']}: no client returned a test accuracy")
    validation = val_accuracies(evaluate(grid, participation, strategy, state, after, "validation", "val", **memory))
    result = cell_result(facts, cohort.client_facts, final, rounds, selection, participation.failures, time.perf_counter() - started, validation)
    return result, {name: array.numpy() for name, array in state.items()}


def _choice_accuracies(client: int, metrics: dict[str, Any], choices: int, participation: Participation) -> list[float] | None:
    if float(metrics.get("num-examples", 0)) == 0 or "accuracies" not in metrics:
        return None  # no validation images: this client does not vote
    values = metrics["accuracies"]
    if not isinstance(values, list) or len(values) != choices:
        participation.failures.append(Failure("memory selection", client, f"expected {choices} accuracies, got {values!r}"))
        return None
    return [float(v) for v in values]


def cell_result(
    facts: dict[str, Any], client_facts: dict[int, dict[str, Any]], accuracies: dict[int, float], rounds: list[dict[str, Any]],
    selection: dict[str, Any] | None, failures: list[Failure], wall_seconds: float, validation: dict[int, float] | None = None,
) -> dict[str, Any]:
    """A CellResult in the key order runner.ts writes; `failures` only when there were any."""
    cell = facts["cell"]
    values = [accuracies[c] for c in sorted(accuracies)]
    m = mean(values)
    result: dict[str, Any] = {
        "id": cell["id"],
        "method": cell["method"],
        "methodLabel": cell["methodLabel"],
        "dataset": cell["dataset"],
        "datasetLabel": cell["datasetLabel"],
        "backbone": cell["backbone"],
        "shots": cell["shots"],
        "seed": cell["seed"],
        "scoring": cell["scoring"],
        "config": {**facts["cellConfig"], **({facts.get("selectionField", "memorySelection"): selection} if selection else {})},
        "clients": [
            {
                "id": c, "accuracy": accuracies[c], "testCount": client_facts[c]["testCount"],
                **({"valAccuracy": validation[c]} if validation and c in validation else {}),
                "classes": list(client_facts[c]["classes"]),
            }
            for c in sorted(accuracies)
        ],
        "meanAccuracy": m,
        **({"meanValAccuracy": mean([validation[c] for c in sorted(validation)])} if validation else {}),
        "stdAccuracy": math.sqrt(mean([(a - m) ** 2 for a in values])),
        "rounds": rounds,
        "wallSeconds": wall_seconds,
    }
    if failures:
        result["failures"] = [f.as_json() for f in failures]
    return result
