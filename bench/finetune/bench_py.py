"""The Python side of bench/finetune; prints `result MODE SECONDS`.

Modes: `py`, a plain Trainer script (datasets + map, as the transformers course writes it);
`pybridge`, pybridge.train.fine_tune() called from Python (what R calls, without R).
"""

import sys
import tempfile
import time

import torch

from pybridge.fixtures import task_models, trainer_reference

N_TRAIN, N_EVAL = 800, 200
folder = task_models.ensure(names=["bert"])["bert"]
data = trainer_reference.toy_classification(N_TRAIN + N_EVAL)
texts, labels = data["text"], data["label"]
settings = dict(epochs=2, learning_rate=1e-3, batch_size=16, seed=42, save=True)

mode = sys.argv[1] if len(sys.argv) > 1 else "py"


def run(n_train, n_eval, output_dir, epochs):
    train_part = texts[:n_train], labels[:n_train]
    eval_part = texts[-n_eval:], labels[-n_eval:]
    if mode == "py":
        history = trainer_reference.plain_trainer(
            folder, *train_part, *eval_part, output_dir, **{**settings, "epochs": epochs}
        )
        return max(h.get("step", 0) for h in history)
    from pybridge import train

    res = train.fine_tune(
        folder,
        *train_part,
        *eval_part,
        epochs=epochs,
        learning_rate=1e-3,
        batch_size=16,
        seed=42,
        output_dir=output_dir,
    )
    return int(res["metrics"]["step"].max())


with tempfile.TemporaryDirectory() as tmp:
    run(32, 16, f"{tmp}/warm", 1)
    start = time.perf_counter()
    steps = run(N_TRAIN, N_EVAL, f"{tmp}/run", 2)
    seconds = time.perf_counter() - start
print(f"result {mode} {seconds:.3f} steps={steps} threads={torch.get_num_threads()}")
