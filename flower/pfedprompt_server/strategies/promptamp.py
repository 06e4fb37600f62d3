"""PromptAMP: FedAMP's attentive message passing on the prompt (src/methods/promptamp.ts).

Each client uploads its own context P_i; the server sends client i its own
cloud prompt

    u_i = (1 − Σ_j ξ_ij) P_i + Σ_j ξ_ij P_j,   ξ_ij = α_K · exp(−‖P_i − P_j‖² / σ) / σ   (j ≠ i),

computed from this round's uploads. The server state is one `cloud/<client>`
array per client, starting from what the nodes describe.
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


def cloud_key(client: int) -> str:
    return f"cloud/{client}"


def cloud_prompts(contexts: list[tuple[int, np.ndarray]], alpha_k: float, sigma: float) -> dict[int, np.ndarray]:
    """Each uploader's cloud prompt, in float64 as cloudPrompts in promptamp.ts, rounded to float32 at the end.

    `contexts` is (client, float32 context) in upload order; sums run in the same
    order as the TypeScript loops (np.cumsum is a sequential sum), so the
    results agree with it to the last bit but for exp's rounding.
    """
    out: dict[int, np.ndarray] = {}
    for a, p_i in contexts:
        pi = p_i.astype(np.float64)
        u = np.zeros_like(pi)
        others = 0.0
        for b, p_j in contexts:
            if b == a:
                continue
            pj = p_j.astype(np.float64)
            diff = pi - pj
            distance = float(np.cumsum(diff * diff)[-1]) if diff.size else 0.0
            xi = (alpha_k * math.exp(-distance / sigma)) / sigma
            others += xi
            u += xi * pj
        u += (1.0 - others) * pi
        out[a] = u.astype(np.float32)
    return out


class PromptAmp(Strategy):
    def __init__(self, participation: Participation, alpha_k: float, sigma: float) -> None:
        if not (alpha_k > 0 and sigma > 0):
            raise ValueError(f"PromptAMP: α_K and σ must be positive, got {alpha_k} and {sigma}")
        self.participation = participation
        self.alpha_k = alpha_k
        self.sigma = sigma

    def summary(self) -> None:
        log(INFO, "PromptAMP: α_K %g, σ %g", self.alpha_k, self.sigma)

    def download(self, arrays: ArrayRecord, client: int) -> ArrayRecord:
        return ArrayRecord({"cloud": arrays[cloud_key(client)]})

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        self.sent_state = arrays  # clients that do not upload this round keep their cloud prompt
        return self.participation.messages(
            protocol.FIT, f"round {server_round}", self.participation.cohort.participants(server_round),
            lambda client: self.download(arrays, client), server_round,
        )

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        exchange = self.participation.receive(replies, upload_spec=self.participation.cohort.facts["uploadSpec"])
        contexts = [(client, exchange.uploads[client]["context"].numpy()) for client in sorted(exchange.uploads)]
        state = {name: array.numpy() for name, array in self.sent_state.items()}
        for client, u in cloud_prompts(contexts, self.alpha_k, self.sigma).items():
            state[cloud_key(client)] = u
        return protocol.array_record(state), None

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        raise NotImplementedError("evaluation goes through evaluation.evaluate, which asks every client")

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        raise NotImplementedError("evaluation goes through evaluation.evaluate")
