"""pFedMoAP: every client's latest prompt kept, each node sent its nearest others as experts (src/methods/pfedmoap.ts).

The server state holds `global` (where every local prompt starts: the FedAvg
of the last round's uploads, weighted by training images unless
`methodOptions.weighted` is false) and `prompt/<client>`, each client's latest
upload, kept across rounds. Client i is sent

    global, experts = its K nearest other stored prompts by ‖P_i − P_j‖ (nearest first,
    ties to the lower id) packed into K = min(experts − 1, clients − 1) slots,
    expertCount = how many slots are filled (0 until client i itself has uploaded).

The arithmetic follows the TypeScript server half (float64 sums in the same
order, float32 at the end), so both send the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from logging import INFO

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.common import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from .. import protocol
from ..exchange import Participation
from ..failures import FederationError

PROMPT = "prompt/"


def prompt_key(client: int) -> str:
    return f"{PROMPT}{client}"


def expert_slots(experts: int, clients: int) -> int:
    return max(0, min(experts - 1, clients - 1))


def nearest_experts(state: dict[str, np.ndarray], client: int, k: int) -> list[int]:
    """Other clients whose stored prompts are nearest to `client`'s, as nearestExperts in pfedmoap.ts."""
    own = state.get(prompt_key(client))
    if own is None:
        return []
    own64 = own.astype(np.float64)
    candidates = []
    for name, p in state.items():
        if not name.startswith(PROMPT):
            continue
        other = int(name[len(PROMPT):])
        if other == client:
            continue
        diff = own64 - p.astype(np.float64)
        candidates.append((math.sqrt(float(np.cumsum(diff * diff)[-1])) if diff.size else 0.0, other))
    candidates.sort()
    return [other for _, other in candidates[:k]]


def download(state: dict[str, np.ndarray], client: int, slots: int) -> dict[str, np.ndarray]:
    size = state["global"].size
    chosen = nearest_experts(state, client, slots)
    packed = np.zeros(slots * size, dtype=np.float32)
    for e, other in enumerate(chosen):
        packed[e * size:(e + 1) * size] = state[prompt_key(other)]
    return {"global": state["global"], "experts": packed, "expertCount": np.array([len(chosen)], dtype=np.float32)}


def federated_average(uploads: list[tuple[int, float, np.ndarray]]) -> np.ndarray:
    """Σ w x / Σ w in float64, uploads in the given order, as federatedAverage in method.ts."""
    total = 0.0
    out = np.zeros(uploads[0][2].size, dtype=np.float64)
    for _, weight, x in uploads:
        total += weight
        out += weight * x.astype(np.float64)
    if not total > 0:
        raise FederationError("pFedMoAP: the uploads carry no weight (no client reports training images)")
    return (out / total).astype(np.float32)


def aggregate(state: dict[str, np.ndarray], uploads: list[tuple[int, float, np.ndarray]]) -> dict[str, np.ndarray]:
    """The next state: this round's FedAvg as `global`, each uploader's prompt stored (the others keep theirs)."""
    nxt = dict(state)
    nxt["global"] = federated_average(uploads)
    for client, _, context in uploads:
        nxt[prompt_key(client)] = context
    return nxt


class PFedMoAp(Strategy):
    def __init__(self, participation: Participation, experts: int, weighted: bool) -> None:
        if not (isinstance(experts, int) and experts >= 1):
            raise ValueError(f"pFedMoAP: experts must be a positive integer, got {experts}")
        self.participation = participation
        self.slots = expert_slots(experts, int(participation.cohort.facts["clients"]))
        self.weighted = weighted

    def summary(self) -> None:
        log(INFO, "pFedMoAP: %d non-local experts per client, FedAvg %s", self.slots, "weighted" if self.weighted else "plain")

    def download(self, arrays: ArrayRecord, client: int) -> ArrayRecord:
        return protocol.array_record(download(protocol.vectors(arrays), client, self.slots))

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        self.sent_state = arrays
        return self.participation.messages(
            protocol.FIT, f"round {server_round}", self.participation.cohort.participants(server_round),
            lambda client: self.download(arrays, client), server_round,
        )

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        exchange = self.participation.receive(replies, upload_spec=self.participation.cohort.facts["uploadSpec"])
        uploads = [
            (client, float(exchange.metrics[client]["num-examples"]) if self.weighted else 1.0, exchange.uploads[client]["context"].numpy())
            for client in sorted(exchange.uploads)
        ]
        state = protocol.vectors(self.sent_state)
        return protocol.array_record(aggregate(state, uploads) if uploads else state), None

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        raise NotImplementedError("evaluation goes through evaluation.evaluate, which asks every client")

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        raise NotImplementedError("evaluation goes through evaluation.evaluate")
