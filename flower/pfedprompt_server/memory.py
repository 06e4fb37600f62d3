"""Choosing on validation images after training, as the simulation does (engine.ts, select): the visual
memory's α and β, or a method's own candidates (PromptFL+FT's fine-tuning schedules)."""

from __future__ import annotations

import math
from typing import Any


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def select_memory(base: dict[str, float], grid: list[dict[str, float]], accuracies: list[list[float] | None]) -> dict[str, Any]:
    """The choice with the best mean validation accuracy over clients; the first best is kept.

    `accuracies` holds one list per client (one accuracy per grid entry), or None
    for a client without validation images; NaN entries are left out of a mean.
    Where no client has validation images, the configured values of `base` the
    grid's entries name are kept (none, for a method's own candidates: its first).
    """
    scored = []
    for k, g in enumerate(grid):
        values = [a[k] for a in accuracies if a is not None and not math.isnan(a[k])]
        scored.append({**g, "valAccuracy": mean(values)})
    if all(math.isnan(s["valAccuracy"]) for s in scored):
        return {
            "candidates": scored,
            "chosen": {key: base[key] for key in (grid[0] if grid else {}) if key in base},
            "how": "no client has validation images: the configured values were kept",
        }
    best = 0
    for k, s in enumerate(scored):
        if s["valAccuracy"] > scored[best]["valAccuracy"] or math.isnan(scored[best]["valAccuracy"]):
            best = k
    return {
        "candidates": scored,
        "chosen": dict(grid[best]),
        "how": f"grid of {len(grid)} choices scored by mean accuracy over clients on their validation images after training; the first best kept",
    }
