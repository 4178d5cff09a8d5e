"""Python side of the speech recognition bench: transformers in Python, as a user would write it.

``python asr_py.py run MODEL_FOLDER WAV ROUNDS WARMUP_WAV`` prints one JSON line
``{"model", "median", "times"}``: transformers' automatic-speech-recognition pipeline on the
file's path (transformers decodes it with ffmpeg) in 30 s chunks, batch_size 4, greedy
(num_beams = 1), after a warm-up on WARMUP_WAV (loading excluded), on one torch thread (as
asr.R sets for hfbridge).

``python asr_py.py make WAV SECONDS`` writes the bench's audio once: speech markers of SECONDS
seconds (pybridge.fixtures.audio_models), 16 kHz 16-bit wav.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

ARGS = {"chunk_length_s": 30, "batch_size": 4, "num_beams": 1}


def main(argv) -> None:
    if argv[0] == "make":
        from pybridge.fixtures import audio_models as am

        if not os.path.exists(argv[1]):
            os.makedirs(os.path.dirname(argv[1]), exist_ok=True)
            am.write_wav(argv[1], am.speech_markers(float(argv[2]), seed=5))
        return
    _, model, wav, rounds, warmup = argv
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    pipe = transformers.pipeline("automatic-speech-recognition", model=model, device="cpu")
    pipe(warmup, ignore_warning=True, **ARGS)
    times = []
    for _ in range(int(rounds)):
        start = time.perf_counter()
        pipe(wav, ignore_warning=True, **ARGS)
        times.append(time.perf_counter() - start)
    print(json.dumps({"model": model, "median": statistics.median(times), "times": times}))


if __name__ == "__main__":
    main(sys.argv[1:])
