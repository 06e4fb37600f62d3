"""PyTorch side of `npm run bench:clip`: the same work as bench/clip.ts, on
the shared reference's CLIP (shared/reference/clip_ref.py) with random
weights, timed the same way (one warm-up, then medians).

    /usr/bin/python3 bench/clip_ref_bench.py < job.json > result.json

The job (JSON on stdin, written by bench/clip.ts):
    {"reference": DIR or null, "threads": N, "runs": N, "full_runs": N,
     "tasks": ["vit", "rn", "coop"], "image_batch": 16,
     "coop": {"ids": [[77 ids] x C], "n_ctx": 16, "batch": 32}}

Prints one JSON object with the medians (ms) to stdout; progress goes to stderr.
The reference directory is the job's, else $PFEDPROMPT_SHARED/reference, else
../shared/reference beside the project root.
"""
import json
import os
import resource
import statistics
import sys
import time


def log(*args):
    print("[torch]", *args, file=sys.stderr, flush=True)


def reference_dir(job):
    if job.get("reference"):
        return job["reference"]
    shared = os.environ.get("PFEDPROMPT_SHARED")
    if shared:
        return os.path.join(shared, "reference")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(root, "..", "shared", "reference")


def system_busy_seconds():
    """Busy CPU-seconds of the whole machine so far (Linux /proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            user, nice, system, _idle, _iowait, irq, softirq, steal = [int(x) for x in stat.readline().split()[1:9]]
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn, runs, warmup=1):
    """Milliseconds of each of `runs` calls of fn, after `warmup` untimed ones,
    and the share of the machine other processes used meanwhile (None if unknown)."""
    for _ in range(warmup):
        fn()
    times = []
    busy, own, wall = system_busy_seconds(), own_cpu_seconds(), time.perf_counter()
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    busy_now = system_busy_seconds()
    others = None
    if busy is not None and busy_now is not None:
        others = max(0.0, busy_now - busy - (own_cpu_seconds() - own)) / ((time.perf_counter() - wall) * os.cpu_count())
    return times, others


def loaded_blas():
    """The BLAS library this process mapped (Linux), since Debian's torch uses
    whichever libblas.so.3 is installed: the netlib reference one is many
    times slower than OpenBLAS and would make any comparison meaningless."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        return None
    found = sorted(p for p in paths if any(k in os.path.basename(p) for k in ("blas", "mkl_core", "blis")))
    return found[0] if found else None


def summary(measured):
    times, others = measured
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "runs": len(times),
            "others_share": others}


# Same sizes as bench/clip.ts: see CLIP_VIT_B16 and CLIP_RN50 in src/clip/random.ts.
TEXT = dict(context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8, transformer_layers=12)
VIT_B16 = dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=16, **TEXT)
RN50 = dict(embed_dim=1024, image_resolution=224, vision_layers=(3, 4, 6, 3), vision_width=64, vision_patch_size=None,
            vision_heads=32, **TEXT)


def make_model(clip_ref, cfg, seed):
    model = clip_ref.CLIP(**cfg).eval()
    clip_ref.randomize_(model, seed)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def bench_encode(torch, model, batch, runs):
    pixels = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return summary(timed(lambda: model.encode_image(pixels), runs))


def bench_coop(torch, F, model, coop, runs, full_runs):
    """One CoOp step as make_goldens.goldens does it: the start token's and
    class names' embeddings are fixed (computed once, as CoOp's PromptLearner
    keeps them as buffers), the shared context is spliced in, then
    text_from_embeddings, cosine logits, cross-entropy and backward to ctx."""
    g = torch.Generator().manual_seed(2)
    ids = torch.tensor(coop["ids"], dtype=torch.long)  # [C, 77]
    n_ctx, batch = coop["n_ctx"], coop["batch"]
    classes, width = ids.shape[0], model.positional_embedding.shape[1]
    ctx = (torch.randn(n_ctx, width, generator=g) * 0.02).requires_grad_(True)
    images = torch.randn(batch, model.text_projection.shape[1], generator=g)
    labels = torch.randint(0, classes, (batch,), generator=g)
    with torch.no_grad():
        embeddings = model.token_embedding(ids)

    def step(length):
        pids, emb = ids[:, :length], embeddings[:, :length]
        ctx.grad = None
        x = torch.cat([emb[:, :1], ctx.expand(classes, -1, -1), emb[:, 1 + n_ctx:]], 1)
        text = model.text_from_embeddings(x, pids)
        logits = model.logit_scale.exp() * F.normalize(images, dim=-1) @ F.normalize(text, dim=-1).t()
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        return loss

    cut = int(ids.argmax(-1).max()) + 1  # after the last end-of-text token
    result = {"cut_length": cut, "full_length": ids.shape[1]}
    log(f"CoOp step, sequences cut at {cut} tokens ({runs} runs)")
    result["cut"] = summary(timed(lambda: step(cut), runs))
    if full_runs > 0:
        # The cut variant has just run the same kernels: no separate warm-up for the slow full-length one.
        log(f"CoOp step, full {ids.shape[1]} tokens ({full_runs} runs, no warm-up)")
        result["full"] = summary(timed(lambda: step(ids.shape[1]), full_runs, warmup=0))
    return result


def main():
    job = json.load(sys.stdin)
    ref = reference_dir(job)
    if not os.path.isfile(os.path.join(ref, "clip_ref.py")):
        print(json.dumps({"error": f"no clip_ref.py in {ref}"}))
        return
    sys.path.insert(0, ref)
    import torch
    import torch.nn.functional as F
    import clip_ref

    torch.set_num_threads(job["threads"])
    torch.zeros(2, 2) @ torch.zeros(2, 2)  # loads the BLAS
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "reference": os.path.abspath(ref),
           "blas": loaded_blas()}
    tasks, runs = job["tasks"], job["runs"]
    if "vit" in tasks or "coop" in tasks:
        log("building ViT-B/16")
        model = make_model(clip_ref, VIT_B16, 16)
        if "vit" in tasks:
            log(f"ViT-B/16 encode_image, batch {job['image_batch']} ({runs} runs)")
            out["vit"] = bench_encode(torch, model, job["image_batch"], runs)
        if "coop" in tasks:
            out["coop"] = bench_coop(torch, F, model, job["coop"], runs, job["full_runs"])
        del model
    if "rn" in tasks:
        log("building RN50")
        model = make_model(clip_ref, RN50, 50)
        log(f"RN50 encode_image, batch {job['image_batch']} ({runs} runs)")
        out["rn"] = bench_encode(torch, model, job["image_batch"], runs)
        del model
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


if __name__ == "__main__":
    main()
