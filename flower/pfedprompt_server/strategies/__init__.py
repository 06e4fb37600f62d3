"""One strategy per aggregation rule; `strategy_for` picks the cell's from what the nodes described."""

from __future__ import annotations

from ..exchange import Participation
from .fedavg import PromptFedAvg
from .local import LocalOnly
from .pfedmoap import PFedMoAp
from .promptamp import PromptAmp

FEDAVG_METHODS = ("promptfl", "promptfl-ft", "promptper", "promptprox", "pfedprompt", "fedotp")


def strategy_for(participation: Participation) -> PromptFedAvg | PromptAmp | PFedMoAp | LocalOnly:
    facts = participation.cohort.facts
    method = facts["cell"]["method"]
    if not facts["communicates"]:
        return LocalOnly(participation)  # zero-shot, local CoOp, local Tip-Adapter: nothing to aggregate
    if method == "promptamp":
        amp = facts["cellConfig"]["methodOptions"]["amp"]
        return PromptAmp(participation, alpha_k=float(amp["alphaK"]), sigma=float(amp["sigma"]))
    if method == "pfedmoap":
        moap = facts["cellConfig"]["methodOptions"]["moap"]
        return PFedMoAp(participation, experts=int(moap["experts"]), weighted=bool(facts["weighted"]))
    if method in FEDAVG_METHODS:
        return PromptFedAvg(participation, weighted=bool(facts["weighted"]))
    raise ValueError(f'no server strategy for method "{method}"')


__all__ = ["FEDAVG_METHODS", "LocalOnly", "PFedMoAp", "PromptAmp", "PromptFedAvg", "strategy_for"]
