"""Choosing the visual memory's α and β after training, as the simulation does (engine.ts, selectMemory)."""

from __future__ import annotations

import math
from typing import Any


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def select_memory(base: dict[str, float], grid: list[dict[str, float]], accuracies: list[list[float] | None]) -> dict[str, Any]:
    """The (α, β) with the best mean validation accuracy over clients; the first best is kept.

    `accuracies` holds one list per client (one accuracy per grid entry), or None
    for a client without validation images; NaN entries are left out of a mean.
    """
    scored = []
    for k, g in enumerate(grid):
        values = [a[k] for a in accuracies if a is not None and not math.isnan(a[k])]
        scored.append({"alpha": g["alpha"], "beta": g["beta"], "valAccuracy": mean(values)})
    if all(math.isnan(s["valAccuracy"]) for s in scored):
        return {
            "candidates": scored,
            "chosen": {"alpha": base["alpha"], "beta": base["beta"]},
            "how": "no client has validation images: the configured α and β were kept",
        }
    best = scored[0]
    for s in scored[1:]:
        if s["valAccuracy"] > best["valAccuracy"] or math.isnan(best["valAccuracy"]):
            best = s
    return {
        "candidates": scored,
        "chosen": {"alpha": best["alpha"], "beta": best["beta"]},
        "how": f"grid of {len(grid)} (α, β) pairs scored by mean accuracy over clients on their validation images after training; the first best kept",
    }
