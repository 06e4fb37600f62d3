"""Asking every client of the cell to score its test or validation images with what it was sent."""

from __future__ import annotations

import math
from typing import Any, Protocol

from flwr.app import ArrayRecord
from flwr.serverapp import Grid

from . import protocol
from .exchange import Participation
from .failures import Failure


class Downloads(Protocol):
    def download(self, arrays: ArrayRecord, client: int) -> ArrayRecord: ...


def evaluate(
    grid: Grid, participation: Participation, strategy: Downloads, state: ArrayRecord, server_round: int, stage: str, split: str,
    **memory: Any,
) -> dict[int, dict[str, Any]]:
    """Each answering client's metrics; `memory` is `memory_choices=[…]` or `memory_choice={…}` or nothing."""
    cohort = participation.cohort
    messages = participation.messages(
        protocol.EVALUATE, stage, cohort.clients, lambda c: strategy.download(state, c), server_round,
        count_download=False, split=split, **memory,
    )
    return participation.receive(grid.send_and_receive(messages, timeout=cohort.timeout)).metrics


def val_accuracies(metrics: dict[int, dict[str, Any]]) -> dict[int, float]:
    """Client → validation accuracy, for the clients that have validation images (the others answer NaN and are left out)."""
    out = {}
    for client, m in sorted(metrics.items()):
        values = m.get("accuracies")
        value = values[0] if isinstance(values, list) and len(values) == 1 else m.get("accuracy")
        if isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1:
            out[client] = float(value)
    return out


def test_accuracies(metrics: dict[int, dict[str, Any]], participation: Participation, stage: str) -> dict[int, float]:
    """Client → test accuracy; a reply without a usable accuracy is recorded as a failure."""
    out = {}
    for client, m in sorted(metrics.items()):
        value = m.get("accuracy", None)
        if value is None and isinstance(m.get("accuracies"), list) and len(m["accuracies"]) == 1:
            value = m["accuracies"][0]
        if isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1:
            out[client] = float(value)
        else:
            participation.failures.append(Failure(stage, client, f"no accuracy in [0, 1] in the reply (got {value!r})"))
    return out
