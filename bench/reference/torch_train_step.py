#!/usr/bin/python3
"""PyTorch reference timing of one full training step (zero_grad, forward, loss, backward, clip, AdamW step).

The engine's training benchmark is compared against this number, so the models are the same plain-torch GPT-2 and
Llama code the test fixtures come from (tests/fixtures/reference_models.py), in float32 and eager mode.

  /usr/bin/python3 bench/reference/torch_train_step.py --arch gpt2 --layers 4 --dim 256 --heads 4 \
      --vocab 8192 --seq 128 --batch 4 --steps 5 --threads 2 [--json]

On a GPU (bench/gpu/run.sh runs it beside Engine's own GPU train step): --device cuda, and the settings a PyTorch user
would pick there: --sdpa (F.scaled_dot_product_attention, flash/memory-efficient kernels, instead of the explicit
softmax(q·kᵀ) of the fixture models), --fused-adamw (torch.optim.AdamW(fused=True)), --tf32 (TF32 matrix products).
"""

import argparse
import json
import os
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=["gpt2", "llama"], required=True)
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--dim", type=int, required=True, help="channels C")
    p.add_argument("--heads", type=int, required=True, help="query heads NH")
    p.add_argument("--kv-heads", type=int, default=None, help="key/value heads NKV (llama; default NH)")
    p.add_argument("--ffn", type=int, default=None, help="MLP width (default: 4C for gpt2, 8C/3 rounded up to 32 for llama, as Engine's TransformerConfig.Llama)")
    p.add_argument("--vocab", type=int, required=True)
    p.add_argument("--seq", type=int, required=True, help="sequence length T")
    p.add_argument("--batch", type=int, required=True, help="batch size B")
    p.add_argument("--steps", type=int, default=10, help="timed steps (after 2 warm-up steps)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tied", action="store_true", help="llama: tie lm_head to the embedding (gpt2 always is)")
    p.add_argument("--qkv-bias", action="store_true", help="llama: Qwen2-style q/k/v biases")
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--sdpa", action="store_true", help="attention through F.scaled_dot_product_attention (is_causal)")
    p.add_argument("--fused-adamw", action="store_true", help="torch.optim.AdamW(fused=True) (cuda)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 in matrix products (cuda)")
    a = p.parse_args()
    if a.kv_heads is None:
        a.kv_heads = a.heads
    if a.arch == "gpt2" and (a.kv_heads != a.heads or a.ffn not in (None, 4 * a.dim)):
        p.error("gpt2 has NKV = NH and an MLP of 4C")
    if a.dim % a.heads or a.heads % a.kv_heads:
        p.error("--dim must be a multiple of --heads, and --heads a multiple of --kv-heads")
    if a.arch == "gpt2":
        a.tied = True
    if a.ffn is None:
        a.ffn = 4 * a.dim if a.arch == "gpt2" else (8 * a.dim // 3 + 31) // 32 * 32
    return a


args = parse_args()
# Thread pools size themselves at first use: fix them before torch (and its BLAS) load.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures"))
import reference_models as rm  # noqa: E402


def blas_library() -> str:
    """The BLAS actually mapped into the process (Debian's torch links the libblas.so.3 alternative)."""
    a = torch.ones(64, 64)
    _ = a @ a
    found = set()
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            base = os.path.basename(path)
            if any(k in base for k in ("blas", "mkl", "blis", "atlas")):
                found.add(f"{base} -> {os.path.realpath(path)}")
    config = torch.__config__.show()
    blas_info = next((part.split("=", 1)[1] for part in config.replace(",", "\n").split() if part.startswith("BLAS_INFO=")), "?")
    return f"BLAS_INFO={blas_info}; loaded: " + ("; ".join(sorted(found)) if found else "none found")


def build_model(a):
    if a.arch == "gpt2":
        return rm.Gpt2LMHeadModel(rm.Gpt2Config(vocab_size=a.vocab, n_positions=a.seq, n_embd=a.dim, n_layer=a.layers,
                                                n_head=a.heads))
    return rm.LlamaForCausalLM(rm.LlamaConfig(
        vocab_size=a.vocab, max_position_embeddings=a.seq, hidden_size=a.dim, num_hidden_layers=a.layers,
        num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, intermediate_size=a.ffn,
        rope_theta=a.rope_theta, attention_bias=a.qkv_bias, tie_word_embeddings=a.tied))


def main():
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    if args.sdpa:
        rm.causal_attention = lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    model = build_model(args).to(torch.float32).to(device)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 0.02)
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
    model.train()
    opt = rm.adamw(model, args.lr, (0.9, 0.95), 1e-8, 0.1)
    if args.fused_adamw:
        opt = torch.optim.AdamW(opt.param_groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    g = torch.Generator().manual_seed(args.seed + 1)
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=g).to(device)
    inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = rm.cross_entropy(model(inputs), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for _ in range(2):
        step()
    times, losses = [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - start)

    ms = statistics.median(times) * 1000.0
    tokens_per_second = args.batch * args.seq / (ms / 1000.0)
    n_params = sum(p.numel() for p in model.parameters())
    config = {k: v for k, v in vars(args).items() if k not in ("json",)}
    result = {
        "ms_per_step": round(ms, 3),
        "tokens_per_second": round(tokens_per_second, 1),
        "ms_per_step_all": [round(t * 1000.0, 3) for t in times],
        "final_loss": losses[-1],
        "parameters": n_params,
        "config": config,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "blas": blas_library() if device.type == "cpu" else torch.cuda.get_device_name(device),
        "dtype": "float32" + (" (tf32 matmul)" if args.tf32 and device.type == "cuda" else ""),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"torch {torch.__version__} {result['dtype']} eager on {args.device}, {torch.get_num_threads()} threads, {result['blas']}")
        print(f"{args.arch} L={args.layers} C={args.dim} NH={args.heads} NKV={args.kv_heads} F={args.ffn} "
              f"V={args.vocab} T={args.seq} B={args.batch}: {n_params / 1e6:.2f}M parameters")
        print(f"median {ms:.1f} ms/step over {args.steps} steps ({tokens_per_second:.0f} tokens/s); "
              f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")


if __name__ == "__main__":
    main()
