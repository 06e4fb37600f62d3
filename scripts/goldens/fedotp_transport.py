"""Golden FedOTP transport plans and logits: a transcription of HongxiaLee/FedOTP trainers/GLP_OT.py.

    /usr/bin/python3 scripts/goldens/fedotp_transport.py

CustomCLIP.forward from the image encoder's output on (tokens given, the
class/pool token left out) and Sinkhorn / entropic_COT_fast copied as they
are (self.* made arguments; an iteration counter added), in float64 as
src/methods/fedotp.ts computes the plan. Small random cases, one per
(transport, ε): with ε = 1 the scalings are O(1) and the thresh stop ends
the iterations early; with ε ≤ 0.1 all max_iter run. Writes
test/fixtures/fedotp/transport.safetensors.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sinkhorn(K, u, v, thresh, max_iter):
    r = torch.ones_like(u)
    c = torch.ones_like(v)
    it = 0
    for i in range(max_iter):
        r0 = r
        r = u / torch.matmul(K, c.unsqueeze(-1)).squeeze(-1)
        c = v / torch.matmul(K.permute(0, 2, 1).contiguous(), r.unsqueeze(-1)).squeeze(-1)
        err = (r - r0).abs().mean()
        it += 1
        if err.item() < thresh:
            break
    T = torch.matmul(r.unsqueeze(-1), c.unsqueeze(-2)) * K
    return T, it


def entropic_cot_fast(a, b, M, thresh, numItermax):
    dx = torch.ones_like(a)
    dy = torch.ones_like(b)
    stopThr = thresh
    K = M
    Kp = torch.matmul(torch.diag_embed(1 / a, dim1=1), K)
    Kq = torch.matmul(torch.diag_embed(1 / b, dim1=1), K.permute(0, 2, 1))
    err, cpt = 1, 0
    u = dx
    v = dy
    while (cpt < numItermax):
        v0 = v
        temp = torch.div(dx, torch.matmul(Kp, v.unsqueeze(-1)).squeeze(-1))
        u = torch.minimum(temp, dx)
        v = torch.div(dy, torch.matmul(Kq, u.unsqueeze(-1)).squeeze(-1))
        cpt = cpt + 1
        err = (v - v0).abs().mean()
        if err.item() < stopThr:
            break
    Kprev = torch.matmul(torch.diag_embed(u, dim1=1), K)
    Kprev = torch.matmul(Kprev, torch.diag_embed(v, dim1=1))
    return Kprev, cpt


def forward(image_features, text_features, logit_scale, OT, eps, thresh, max_iter, top_percent_opt):
    """image_features [M, b, d] (tokens), text_features [N, n_cls, d]: GLP_OT CustomCLIP.forward after the encoders."""
    M, b, d = image_features.shape
    N, n_cls, _ = text_features.shape
    image_features = F.normalize(image_features, dim=2)
    text_features = F.normalize(text_features, dim=2)
    sim = torch.einsum('mbd,ncd->mnbc', image_features, text_features).contiguous()
    sim = sim.view(M, N, b * n_cls)
    sim = sim.permute(2, 0, 1)
    wdist = 1.0 - sim
    xx = torch.zeros(b * n_cls, M, dtype=sim.dtype, device=sim.device).fill_(1. / M)
    if OT == 'Sinkhorn':
        yy = torch.zeros(b * n_cls, N, dtype=sim.dtype, device=sim.device).fill_(1. / N)
    elif OT == 'COT':
        top_percent = min(torch.sum(xx).item(), top_percent_opt)
        yy = torch.zeros(b * n_cls, N, dtype=sim.dtype, device=sim.device).fill_(1. / N) * top_percent
    with torch.no_grad():
        KK = torch.exp(-wdist / eps)
        if OT == 'Sinkhorn':
            T, it = sinkhorn(KK, xx, yy, thresh, max_iter)
        elif OT == 'COT':
            T, it = entropic_cot_fast(xx, yy, KK, thresh, max_iter)
    assert not torch.isnan(T).any()
    sim_op = torch.sum(T * sim, dim=(1, 2))
    sim_op = sim_op.contiguous().view(b, n_cls)
    return logit_scale * sim_op, T, it


def main():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(2024)
    b, M, C, E, N = 3, 5, 4, 8, 2
    logit_scale = 27.5
    cases = [("cot", "COT", 0.01), ("cot", "COT", 1.0), ("sinkhorn", "Sinkhorn", 0.1), ("sinkhorn", "Sinkhorn", 1.0)]
    out = {}
    meta = {"b": b, "M": M, "C": C, "E": E, "N": N, "logit_scale": logit_scale, "thresh": 1e-3, "max_iter": 100, "top_percent": 0.8, "cases": []}
    # Inputs in float32 (what the TypeScript side holds), computed in float64.
    tokens = torch.randn(b, M, E, generator=g).float()  # [b, M, E], not normalised
    # Text features pulled toward the tokens' mean so similarities are not all near 0.
    text = (torch.randn(N, C, E, generator=g) + 0.8 * tokens.mean(dim=(0, 1))).float()
    text = F.normalize(text.double(), dim=2).float()  # the text tower gives unit rows
    out["input.tokens"] = tokens.numpy()
    out["input.text"] = text.numpy()
    for name, OT, eps in cases:
        logits, T, it = forward(tokens.double().permute(1, 0, 2), text.double(), logit_scale, OT, eps, 1e-3, 100, 0.8)
        key = f"{name}.eps{eps}"
        out[f"{key}.logits"] = logits.numpy()
        out[f"{key}.plans"] = T.numpy()
        meta["cases"].append({"key": key, "transport": name, "eps": eps, "iterations": it})
        print(key, "iterations", it, "logits", logits[0].tolist())
    path = os.path.join(ROOT, "test", "fixtures", "fedotp", "transport.safetensors")
    safetensors_io.write(path, out, {"made_by": "scripts/goldens/fedotp_transport.py", "meta": json.dumps(meta)})
    print("wrote", path)


if __name__ == "__main__":
    main()
