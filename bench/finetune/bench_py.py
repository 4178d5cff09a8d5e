"""The Python side of bench/finetune: a plain Trainer script; prints `result py SECONDS`."""

import tempfile
import time

import torch
from pybridge.fixtures import task_models, trainer_reference

N_TRAIN, N_EVAL = 800, 200
folder = task_models.ensure(names=["bert"])["bert"]
data = trainer_reference.toy_classification(N_TRAIN + N_EVAL)
texts, labels = data["text"], data["label"]
settings = dict(epochs=2, learning_rate=1e-3, batch_size=16, seed=42, save=True)

with tempfile.TemporaryDirectory() as tmp:
    trainer_reference.plain_trainer(folder, texts[:32], labels[:32], texts[-16:], labels[-16:],
                                    f"{tmp}/warm", **{**settings, "epochs": 1})
    start = time.perf_counter()
    history = trainer_reference.plain_trainer(
        folder, texts[:N_TRAIN], labels[:N_TRAIN], texts[N_TRAIN:], labels[N_TRAIN:],
        f"{tmp}/run", **settings)
    seconds = time.perf_counter() - start
steps = max(h.get("step", 0) for h in history)
print(f"result py {seconds:.3f} steps={steps} threads={torch.get_num_threads()}")
