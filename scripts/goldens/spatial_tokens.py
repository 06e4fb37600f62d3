"""Golden spatial tokens for the tiny fixture CLIPs, as FedOTP's image encoder returns them.

    /usr/bin/python3 scripts/goldens/spatial_tokens.py [SHARED_DIR]

Reads ../shared/fixtures/clip/tiny-{rn,vit}-openai (the checkpoint and the
reference's own spatial outputs on its golden images, made by
../shared/reference/clip_ref.py) and writes test/fixtures/fedotp/spatial-tokens.safetensors:
`<fixture>.tokens` [n, T, E]. The two functions below transcribe
HongxiaLee/FedOTP clip/model.py: AttentionPool2d.forward (every position a
query, F.multi_head_attention_forward) for ModifiedResNet_GLP_OT, and
ModifiedVisionTransformer's ln_post + proj on every token; GLP_OT.py then
drops the first token (`image_features[1:]`).
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared")


def resnet_tokens(sd, feature_map, heads):
    x = torch.from_numpy(feature_map.copy())  # [N, C, H, W]
    t = lambda name: torch.from_numpy(sd[f"visual.attnpool.{name}"].copy())  # noqa: E731
    x = x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3]).permute(2, 0, 1)  # NCHW -> (HW)NC
    x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)  # (HW+1)NC
    x = x + t("positional_embedding")[:, None, :].to(x.dtype)
    x, _ = F.multi_head_attention_forward(
        query=x, key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=heads,
        q_proj_weight=t("q_proj.weight"), k_proj_weight=t("k_proj.weight"), v_proj_weight=t("v_proj.weight"),
        in_proj_weight=None, in_proj_bias=torch.cat([t("q_proj.bias"), t("k_proj.bias"), t("v_proj.bias")]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0,
        out_proj_weight=t("c_proj.weight"), out_proj_bias=t("c_proj.bias"),
        use_separate_proj_weight=True, training=False, need_weights=False,
    )
    return x[1:].permute(1, 0, 2)  # GLP_OT: image_features[1:], as [N, HW, E]


def vit_tokens(sd, tokens):
    x = torch.from_numpy(tokens.copy())  # [N, 1+HW, W], before ln_post
    w = x.shape[-1]
    x = F.layer_norm(x, (w,), torch.from_numpy(sd["visual.ln_post.weight"].copy()), torch.from_numpy(sd["visual.ln_post.bias"].copy()), 1e-5)
    x = x @ torch.from_numpy(sd["visual.proj"].copy())
    return x[:, 1:]


def main():
    torch.set_num_threads(1)
    out = {}
    for name in ("tiny-rn-openai", "tiny-vit-openai"):
        d = os.path.join(SHARED, "fixtures", "clip", name)
        sd = safetensors_io.read(os.path.join(d, "model.safetensors"))
        gold = safetensors_io.read(os.path.join(d, "goldens.safetensors"))
        with torch.no_grad():
            if "output.vision_feature_map" in gold:
                channels = gold["output.vision_feature_map"].shape[1]
                heads = channels // 32 * 32 // 64  # vision_width * 32 // 64, as clip_ref and OpenAI's build_model
                tokens = resnet_tokens(sd, gold["output.vision_feature_map"], heads)
            else:
                tokens = vit_tokens(sd, gold["output.vision_tokens"])
        out[f"{name}.tokens"] = tokens.numpy().astype("float32")
        print(name, list(tokens.shape))
    path = os.path.join(ROOT, "test", "fixtures", "fedotp", "spatial-tokens.safetensors")
    safetensors_io.write(path, out, {"made_by": "scripts/goldens/spatial_tokens.py"})
    print("wrote", path)


if __name__ == "__main__":
    main()
