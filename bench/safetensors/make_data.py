"""Writes the safetensors files of the bench: GPT-2-shaped F32 (GPT-2 small names and shapes,
497 MB), or with ``small`` two F32 matrices of 4096 x 2560 (84 MB).

Usage: python make_data.py OUT_PATH [small]. Values are random normals (seeded); a file is written
once and reused while its size matches.
"""

import os
import sys

import numpy as np
from safetensors.numpy import save_file

D, VOCAB, CTX, LAYERS = 768, 50257, 1024, 12


def gpt2_shapes():
    shapes = {"wte.weight": (VOCAB, D), "wpe.weight": (CTX, D)}
    for i in range(LAYERS):
        p = f"h.{i}."
        shapes.update(
            {
                p + "ln_1.weight": (D,),
                p + "ln_1.bias": (D,),
                p + "attn.c_attn.weight": (D, 3 * D),
                p + "attn.c_attn.bias": (3 * D,),
                p + "attn.c_proj.weight": (D, D),
                p + "attn.c_proj.bias": (D,),
                p + "ln_2.weight": (D,),
                p + "ln_2.bias": (D,),
                p + "mlp.c_fc.weight": (D, 4 * D),
                p + "mlp.c_fc.bias": (4 * D,),
                p + "mlp.c_proj.weight": (4 * D, D),
                p + "mlp.c_proj.bias": (D,),
            }
        )
    shapes.update({"ln_f.weight": (D,), "ln_f.bias": (D,)})
    return shapes


def small_shapes():
    return {"a.weight": (4096, 2560), "b.weight": (4096, 2560)}


def expected_size(shapes):
    return sum(int(np.prod(s)) for s in shapes.values()) * 4


def main(out, kind):
    shapes = small_shapes() if kind == "small" else gpt2_shapes()
    if os.path.exists(out) and os.path.getsize(out) > expected_size(shapes):
        print(f"reusing {out}")
        return
    rng = np.random.default_rng(0)
    tensors = {k: rng.standard_normal(s, dtype=np.float32) * 0.02 for k, s in shapes.items()}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    save_file(tensors, out + ".tmp", metadata={"format": "pt"})
    os.replace(out + ".tmp", out)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.0f} MB, {len(tensors)} tensors)")


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else "bench/data/gpt2_f32.safetensors",
        sys.argv[2] if len(sys.argv) > 2 else "gpt2",
    )
