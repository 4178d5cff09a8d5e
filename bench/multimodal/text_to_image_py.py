"""The anchor of bench/multimodal/text_to_image.R: diffusers' own pipeline in Python, as a user
runs it (a CPU generator seeded per call, the default PIL output), on the same folder, prompt,
size and steps. Prints the median seconds per image as JSON.

Usage: python text_to_image_py.py FOLDER ROUNDS STEPS THREADS
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import diffusers
import torch


def main(folder, rounds, steps, threads) -> None:
    torch.set_num_threads(threads)
    diffusers.utils.logging.disable_progress_bar()
    pipe = diffusers.DiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)

    def once(seed):
        started = time.perf_counter()
        pipe(
            "a photo of a cat",
            num_inference_steps=steps,
            generator=torch.Generator().manual_seed(seed),
        ).images[0]
        return time.perf_counter() - started

    once(0)  # warm-up
    times = [once(i) for i in range(rounds)]
    print(json.dumps({"median": statistics.median(times)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
