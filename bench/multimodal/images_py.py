"""Python side of the images bench: the same work written with transformers in Python, as a user
would, loaded into the bench's R process (reticulate) so that each round times R and Python one
after the other, on the same cores, in the same state.

- :func:`classify_anchor`: transformers' image-classification pipeline on the image paths
  (batch_size as given; None, one image at a time, is transformers' default), the anchor of
  pipeline() from R;
- :func:`clip_anchor`: CLIP's get_image_features on each image in a loop (the processor on one
  image opened with transformers' load_image, torch.no_grad), the anchor of embed_image().

Each returns ``run(paths) -> seconds``, timed in Python. :func:`make_images` writes the files.
"""

from __future__ import annotations

import os
import time


def make_images(folder: str, n: int) -> list:
    """``n`` JPEG files of 320 x 240 (a shape on white), written once; their sorted paths."""
    from pybridge.fixtures import vision_models as vm

    os.makedirs(folder, exist_ok=True)
    kinds = [(c, s) for c in vm.COLOURS for s in vm.SHAPES]
    paths = []
    for i in range(int(n)):
        path = os.path.join(folder, f"img_{i:04d}.jpg")
        if not os.path.exists(path):
            colour, shape = kinds[i % len(kinds)]
            shift = ((i * 7) % 41 - 20, (i * 13) % 31 - 15)
            vm.draw(colour, shape, (320, 240), shift).save(path, quality=90)
        paths.append(path)
    return paths


def _timed(work):
    def run(paths):
        start = time.perf_counter()
        work(list(paths))
        return time.perf_counter() - start

    return run


def classify_anchor(model: str, batch_size=None):
    import transformers

    pipe = transformers.pipeline("image-classification", model=model, device="cpu")
    extra = {"batch_size": int(batch_size)} if batch_size else {}
    return _timed(lambda paths: pipe(paths, **extra))


def clip_anchor(model: str):
    import torch
    import transformers
    from transformers.image_utils import load_image

    clip = transformers.CLIPModel.from_pretrained(model).eval()
    processor = transformers.AutoImageProcessor.from_pretrained(model)

    def work(paths):
        with torch.no_grad():
            for p in paths:
                clip.get_image_features(**processor(images=load_image(p), return_tensors="pt"))

    return _timed(work)
