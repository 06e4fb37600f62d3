"""A stand-in for `pfedprompt node` that speaks flower/PROTOCOL.md with deterministic numbers.

No CLIP, no data: uploads, losses and accuracies are simple functions of the
client, the round and what the node was sent, so tests can compute what the
ServerApp must make of them. Used in-process by the unit tests (FakeGrid) and,
inside a Flower ClientApp, by the end-to-end test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict

LENGTH = 8  # values in a context
LABELS = {
    "zeroshot": "zero-shot CLIP", "local-coop": "local CoOp", "promptfl": "PromptFL", "promptfl-ft": "PromptFL+FT",
    "promptper": "PromptPer", "promptprox": "PromptProx", "promptamp": "PromptAMP", "pfedprompt": "pFedPrompt",
    "local-tip-adapter": "local Tip-Adapter", "fedotp": "FedOTP", "pfedmoap": "pFedMoAP",
}
COMMUNICATES = {"promptfl", "promptfl-ft", "promptper", "promptprox", "promptamp", "pfedprompt", "fedotp", "pfedmoap"}
MEMORY = {"pfedprompt", "local-tip-adapter"}
BASE_MEMORY = {"alpha": 1.0, "beta": 5.5}
AMP = {"alphaK": 0.1, "sigma": 1.0, "lambda": 1.0}
MOAP = {"experts": 10, "gatingDim": 128, "heads": 8, "lambda": 0.5, "scaling": 10.0, "gatingLr": 0.01}
# Validation accuracy of each memory choice: choices 1 and 2 tie for best, so the first (1) must win.
VAL_TABLE = [0.5, 0.8, 0.8, 0.6]


def initial_context(seed: int) -> np.ndarray:
    return (np.linspace(-0.1, 0.1, LENGTH) + 0.001 * seed).astype(np.float32)


def train_count(client: int) -> int:
    return 10 + client


def upload_delta(client: int) -> np.float32:
    return np.float32(0.01 * (client + 1))


def accuracy_after(client: int, server_round: int, chosen: bool) -> float:
    return 0.5 + 0.01 * client + 0.001 * server_round + (0.1 if chosen else 0.0)


@dataclass
class FakeNode:
    client: int
    clients: int
    fail: set[tuple[str, int]] = field(default_factory=set)  # (pfedprompt, server-round) answered with an error
    silent: set[tuple[str, int]] = field(default_factory=set)  # ... not answered at all (FakeGrid only)
    no_val: bool = False  # holds no validation images
    participants: list[list[int]] | None = None  # default: every client every round
    min_clients: int = 1
    received: list[Message] = field(default_factory=list)

    def handle(self, message: Message) -> Message | None:
        self.received.append(message)
        config = message.content["config"]
        kind, server_round = str(config["pfedprompt"]), int(config.get("server-round", 0))
        if (kind, server_round) in self.silent:
            return None
        if (kind, server_round) in self.fail:
            return Message(Error(code=0, reason=f"client {self.client} was told to fail {kind} {server_round}"), reply_to=message)
        run_config = json.loads(str(config["run-config"]))
        cell = json.loads(str(config["cell"]))
        if kind == "describe":
            return Message(self.describe(run_config, cell), reply_to=message)
        arrays = message.content["arrays"]
        if kind == "fit":
            return Message(self.fit(cell, arrays, server_round), reply_to=message)
        if kind == "finish":
            return Message(RecordDict({"metrics": MetricRecord({"num-examples": train_count(self.client), "client": self.client})}), reply_to=message)
        if kind == "evaluate":
            return Message(self.evaluate(config, server_round), reply_to=message)
        return Message(Error(code=0, reason=f"unknown request {kind!r}"), reply_to=message)

    def facts(self, run_config: dict[str, Any], cell: dict[str, Any]) -> dict[str, Any]:
        method, rounds = cell["method"], int(run_config.get("federation", {}).get("rounds", 2))
        memory_grid = [{"alpha": a, "beta": b} for a in (0.5, 1.0) for b in (1.0, 5.5)] if method in MEMORY else []
        spec = {"promptper": {"global": LENGTH // 2}}.get(method, {"context": LENGTH}) if method in COMMUNICATES else {}
        return {
            "client": self.client, "clients": self.clients, "trainCount": train_count(self.client), "testCount": 5,
            "classes": [self.client, self.clients + self.client],
            "cell": {
                "id": f"world/tiny/{cell['shots']}shot/{method}/seed{cell['seed']}", "method": method, "methodLabel": LABELS[method],
                "dataset": "world", "datasetLabel": "World", "backbone": "tiny", "shots": cell["shots"], "seed": cell["seed"],
                "scoring": "all-classes",
            },
            "cellConfig": {"methodOptions": {"weighted": True, "amp": AMP, "moap": MOAP, "memory": {**BASE_MEMORY, "space": "spatial"}},
                           "method": method, "seed": cell["seed"], "shots": cell["shots"]},
            "rounds": rounds,
            "participants": self.participants or [list(range(self.clients)) for _ in range(rounds)],
            "minClients": self.min_clients, "timeoutSeconds": 60, "uploadSpec": spec,
            "communicates": method in COMMUNICATES, "trainsPrompt": method not in ("zeroshot", "local-tip-adapter"),
            "hasFinish": method == "promptfl-ft", "memoryGrid": memory_grid,
            "evaluateEachRound": bool(run_config.get("evaluation", {}).get("eachRound", True)),
            "weighted": bool(run_config.get("methodOptions", {}).get("weighted", True)),
        }

    def describe(self, run_config: dict[str, Any], cell: dict[str, Any]) -> RecordDict:
        init = initial_context(cell["seed"])
        method = cell["method"]
        if method == "promptamp":
            arrays = {f"cloud/{i}": init for i in range(self.clients)}
        elif method == "promptper":
            arrays = {"global": init[: LENGTH // 2]}
        elif method == "pfedmoap":
            arrays = {"global": init}
        else:
            arrays = {"context": init}
        return RecordDict({
            "arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
            "facts": ConfigRecord({"json": json.dumps(self.facts(run_config, cell))}),
        })

    def fit(self, cell: dict[str, Any], arrays: ArrayRecord, server_round: int) -> RecordDict:
        method = cell["method"]
        sent = next(iter(arrays.values())).numpy() if len(arrays) else initial_context(cell["seed"])
        trained = (sent + upload_delta(self.client)).astype(np.float32)
        name = {"promptper": "global"}.get(method, "context")
        upload = ArrayRecord({name: Array(trained)}) if method in COMMUNICATES else ArrayRecord()
        metrics = MetricRecord({"num-examples": train_count(self.client), "train-loss": 1.0 / server_round + 0.01 * self.client,
                                "steps": 2, "client": self.client})
        return RecordDict({"arrays": upload, "metrics": metrics})

    def evaluate(self, config: ConfigRecord, server_round: int) -> RecordDict:
        if "memory-choices" in config:
            if self.no_val:
                return RecordDict({"metrics": MetricRecord({"num-examples": 0, "client": self.client})})
            choices = json.loads(str(config["memory-choices"]))
            accuracies = [VAL_TABLE[k % len(VAL_TABLE)] + 0.001 * self.client for k in range(len(choices))]
            return RecordDict({"metrics": MetricRecord({"num-examples": 4, "client": self.client, "accuracies": accuracies})})
        chosen = "memory-choice" in config
        accuracy = accuracy_after(self.client, server_round, chosen)
        return RecordDict({"metrics": MetricRecord({"num-examples": 5, "client": self.client, "accuracy": accuracy})})


class FakeGrid:
    """Grid's send_and_receive over FakeNodes, in process; node ids are 100 + the node's position."""

    def __init__(self, nodes: list[FakeNode]) -> None:
        from flwr.supercore.task_identity import TaskIdentity

        # What a ServerApp process has set before main() runs; Message() reads it.
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
        self.nodes = {100 + i: node for i, node in enumerate(nodes)}
        self.sent: list[Message] = []

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> list[Message]:
        replies = []
        for message in messages:
            self.sent.append(message)
            reply = self.nodes[message.metadata.dst_node_id].handle(message)
            if reply is not None:
                replies.append(reply)
        return replies
