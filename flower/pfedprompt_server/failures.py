"""What went wrong, and when it stops the run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class FederationError(RuntimeError):
    """The run cannot go on: too few clients answered, nodes disagree, a config is unusable."""


@dataclass
class Failure:
    """A node left out of one exchange; `client` is None when the node never said which client it holds."""

    stage: str
    client: int | None
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "client": self.client, "reason": self.reason}
