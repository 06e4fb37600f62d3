"""`<output>/results.json` in the format of src/report/results.ts (`pfedprompt-results/1`).

Rewritten atomically (temporary file, then rename) after every cell, so a
report can be drawn from it at any time and a crash never leaves half a file.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__

RESULTS_FORMAT = "pfedprompt-results/1"


def iso_now() -> str:
    """The time as JavaScript's toISOString writes it."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_safe(value: Any) -> Any:
    """NaN and infinities become null, as JSON.stringify writes them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def read_cells(path: Path) -> list[dict[str, Any]]:
    """The cells of an existing results file, or none if it is absent or not ours."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return doc["cells"] if isinstance(doc, dict) and doc.get("format") == RESULTS_FORMAT and isinstance(doc.get("cells"), list) else []


def defaults_of_run(config: dict[str, Any]) -> dict[str, Any] | None:
    """The record of defaults chosen on validation that the default experiment's config carries, with the chosen
    settings this run does not use (a flag replaced them), as defaultsOfRun in src/experiment/default-choices.ts."""
    record = config.get("defaultChoices")
    if not record:
        return None
    overridden: list[str] = []
    for choice in record["choices"]:
        for key, value in choice["candidates"][choice["chosen"]]["settings"].items():
            held: Any = config
            for part in key.split("."):
                held = held.get(part) if isinstance(held, dict) else None
            if held != value and key not in overridden:
                overridden.append(key)
    return {"choices": record, "overridden": overridden}


def record_cell(out_dir: Path, cell: dict[str, Any], defaults: dict[str, Any] | None = None) -> Path:
    """Adds `cell` to the results file (replacing a cell of the same id) and writes it atomically, with the run's
    record of defaults chosen on validation when it has one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    cells = [c for c in read_cells(path) if c.get("id") != cell["id"]] + [cell]
    doc = {"format": RESULTS_FORMAT, "code": {"version": __version__}, "createdAt": iso_now(), **({"defaults": defaults} if defaults else {}), "cells": cells}
    write_atomic(path, json.dumps(json_safe(doc), indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it visible
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def prompt_file(out_dir: Path, cell_id: str) -> Path:
    """Where a cell's final server state goes, as runner.ts names it."""
    return out_dir / "prompts" / (cell_id.replace("/", "__") + ".safetensors")


def write_final_state(out_dir: Path, cell_id: str, state: dict[str, Any]) -> Path:
    """The server state after the last round (the shared prompt users deploy), as a safetensors file of
    1-D F32 tensors written atomically. It holds only what the server had: uploads' aggregates."""
    import numpy as np

    tensors = {name: np.ascontiguousarray(np.asarray(a, dtype="<f4").reshape(-1)) for name, a in state.items()}
    header: dict[str, Any] = {}
    offset = 0
    for name, a in tensors.items():
        header[name] = {"dtype": "F32", "shape": [int(a.size)], "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * ((8 - len(head) % 8) % 8)
    path = prompt_file(out_dir, cell_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(len(head).to_bytes(8, "little") + head)
            for a in tensors.values():
                f.write(a.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
