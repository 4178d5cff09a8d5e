"""pybridge.audio against transformers itself, on the tiny Whisper served by the mirror.

Speech recognition runs through the hub layer (the repo id on the local mirror) and is compared
with transformers' own automatic-speech-recognition pipeline built from the same folder, on the
same audio files (wav, mp3, flac, ogg, m4a): the same transcripts, the same segments and
timestamps, with Whisper's long-form algorithm and with chunking. hfbridge hands ffmpeg the
file's path where transformers pipes its bytes: the decoded samples are equal, except that
ffmpeg drops an mp3's encoder padding when it can read the file, and that transformers cannot
decode a long m4a through a pipe at all; those cases are compared on the samples ffmpeg decodes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import wave

import numpy as np
import pytest

from pybridge import audio, errors, models
from pybridge import pipeline as P
from pybridge.fixtures import audio_models as am

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
ffmpeg_read = pytest.importorskip("transformers.pipelines.audio_utils").ffmpeg_read

TASK = "automatic-speech-recognition"
RATE = am.SAMPLING_RATE
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folders():
    return am.ensure()


@pytest.fixture(scope="module")
def files(folders):
    return am.audio_files(folders["audio"])


@pytest.fixture(scope="module")
def repo(mirror, folders):
    mirror.publish(am.REPO_IDS["whisper"], folders["whisper"])
    return am.REPO_IDS["whisper"]


@pytest.fixture(scope="module", autouse=True)
def empty_cache():
    models.cache_clear()
    yield
    models.cache_clear()


@pytest.fixture(scope="module")
def reference(folders):
    return transformers.pipeline(TASK, model=folders["whisper"], device="cpu")


def run(repo, env, inputs, **args):
    return P.run(TASK, inputs, repo, args=args, env=env)


def segments(result) -> list:
    """transformers' chunks as (start, end, text), None as NaN."""
    nan = float("nan")
    return [
        (
            nan if c["timestamp"][0] is None else c["timestamp"][0],
            nan if c["timestamp"][1] is None else c["timestamp"][1],
            c["text"],
        )
        for c in result["chunks"]
    ]


def assert_segments(ours, want, audio_id=1):
    rows = [i for i, a in enumerate(ours["audio_id"]) if a == audio_id]
    got = [(ours["start"][i], ours["end"][i], ours["text"][i]) for i in rows]
    assert [g[2] for g in got] == [w[2] for w in want]
    np.testing.assert_array_equal([g[:2] for g in got], [w[:2] for w in want])
    assert [ours["segment"][i] for i in rows] == list(range(1, len(rows) + 1))


def test_decoding_equals_transformers_ffmpeg_read(files):
    for name in ("speech.wav", "speech.flac", "speech.ogg", "speech.m4a", "long.wav"):
        with open(files[name], "rb") as handle:
            want = ffmpeg_read(handle.read(), RATE)
        np.testing.assert_array_equal(audio.decode(files[name], RATE), want)
    # mp3: ffmpeg reading the file drops the encoder's padding, which a pipe cannot see
    with open(files["speech.mp3"], "rb") as handle:
        piped = ffmpeg_read(handle.read(), RATE)
    ours = audio.decode(files["speech.mp3"], RATE)
    assert ours.shape == (8 * RATE,) and piped.shape[0] > ours.shape[0]


def test_a_relative_name_with_a_colon_is_a_file_not_an_ffmpeg_protocol(
    files, tmp_path, monkeypatch
):
    want = audio.decode(files["speech.wav"], RATE)
    monkeypatch.chdir(tmp_path)
    for name in ("2024-01-01T10:30:00.wav", "take2:final.wav", "pipe:0"):
        shutil.copy(files["speech.wav"], tmp_path / name)
        np.testing.assert_array_equal(audio.decode(name, RATE), want)


def test_a_long_m4a_decodes_where_transformers_pipe_fails(files, tmp_path):
    path = am.ffmpeg_convert(files["long.wav"], tmp_path / "long.m4a", am.CONVERTED["speech.m4a"])
    with open(path, "rb") as handle, pytest.raises(ValueError, match="malformed"):
        ffmpeg_read(handle.read(), RATE)
    assert audio.decode(path, RATE).shape[0] >= 65 * RATE


def test_transcripts_match_transformers_on_each_format(hf_env, repo, files, reference):
    names = ["speech.wav", "speech.mp3", "speech.flac", "speech.ogg", "speech.m4a", "long.wav"]
    ours = run(repo, hf_env, [files[n] for n in names])
    assert list(ours["audio_id"]) == list(range(1, len(names) + 1))
    assert ours["audio_id"].dtype == np.int32
    assert ours["file"] == [files[n] for n in names]
    for name, text in zip(names, ours["text"]):
        source = audio.decode(files[name], RATE) if name == "speech.mp3" else files[name]
        assert text == reference(source)["text"], name
    assert ours["text"][0] and ours["text"][-1] != ours["text"][0]


def test_segments_match_transformers(hf_env, repo, files, reference):
    inputs = [files["long.wav"], files["speech.ogg"]]
    ours = run(repo, hf_env, inputs, return_timestamps=True)
    assert set(ours) == {"audio_id", "file", "segment", "start", "end", "text"}
    assert ours["start"].dtype == np.float64 and ours["segment"].dtype == np.int32
    for audio_id, path in enumerate(inputs, start=1):
        assert_segments(ours, segments(reference(path, return_timestamps=True)), audio_id)
    # long-form: several segments (how many is the tiny model's own matter)
    assert len([a for a in ours["audio_id"] if a == 1]) > 1
    assert np.isnan(ours["end"]).any()  # an open last segment, as Whisper may leave one


def test_chunked_long_audio_matches_transformers(hf_env, repo, files, reference):
    args = dict(return_timestamps=True, chunk_length_s=30, batch_size=2)
    ours = run(repo, hf_env, [files["long.wav"]], **args)
    want = reference(files["long.wav"], ignore_warning=True, **args)
    assert_segments(ours, segments(want))
    plain = run(repo, hf_env, [files["long.wav"]], chunk_length_s=30.0, stride_length_s=4)
    want = reference(files["long.wav"], chunk_length_s=30, stride_length_s=4, ignore_warning=True)
    assert plain["text"] == [want["text"]]


def test_samples_and_their_rate(hf_env, repo, files, reference, tmp_path):
    """Samples at the model's rate go to the pipeline as they are; at another rate they are
    resampled by ffmpeg, as transformers resamples a file at that rate."""
    rng = np.random.default_rng(0)
    quiet = np.zeros(3 * RATE)
    noise = rng.uniform(-0.2, 0.2, 5 * 48000)
    wav48 = tmp_path / "noise48.wav"
    cmd = "ffmpeg -loglevel error -f f32le -ar 48000 -ac 1 -i pipe:0 -c:a pcm_f32le".split()
    subprocess.run(cmd + [str(wav48)], input=noise.astype("<f4").tobytes(), check=True)
    inputs = [quiet, files["speech.wav"], noise]
    ours = run(repo, hf_env, inputs, sampling_rate=[16000, 48000.0], return_timestamps=True)
    assert ours["file"][-1] == "" and files["speech.wav"] in ours["file"]
    assert_segments(ours, segments(reference(quiet.astype(np.float32), return_timestamps=True)))
    assert_segments(ours, segments(reference(files["speech.wav"], return_timestamps=True)), 2)
    assert_segments(ours, segments(reference(str(wav48), return_timestamps=True)), 3)
    text = run(repo, hf_env, [quiet], sampling_rate=RATE)["text"]
    assert text == [reference(quiet.astype(np.float32))["text"]]


def test_language_task_and_generate_settings(hf_env, repo, files, reference):
    path = files["speech.flac"]
    ours = run(repo, hf_env, [path], language="de", num_beams=1, return_language=True)
    want = reference(path, generate_kwargs={"language": "de", "num_beams": 1}, return_language=True)
    assert ours["text"] == [want["text"]]
    assert ours["language"] == [want["chunks"][0]["language"]] == ["german"]
    ours = run(repo, hf_env, [path], task="translate", max_new_tokens=5)
    assert ours["text"] == [
        reference(path, generate_kwargs={"task": "translate", "max_new_tokens": 5})["text"]
    ]


def test_word_timestamps_match_transformers(hf_env, repo, files, reference):
    ours = run(repo, hf_env, [files["speech.wav"]], return_timestamps="word", num_beams=1)
    want = reference(files["speech.wav"], return_timestamps="word", num_beams=1)
    assert_segments(ours, segments(want))
    assert len(ours["text"]) > 3


# ---------------------------------------------------------------------------------------------
# Bad input: classed errors before the model runs


def expect(error, repo, env, inputs, **args):
    with pytest.raises(error) as info:
        run(repo, env, inputs, **args)
    return info.value


def test_missing_file_folder_and_text(hf_env, repo, files, tmp_path):
    err = expect(errors.InvalidArgumentError, repo, hf_env, [files["speech.wav"], "gone.wav"])
    assert err.fields["path"] == "gone.wav" and err.fields["position"] == 2
    assert "does not exist" in str(err)
    err = expect(errors.InvalidArgumentError, repo, hf_env, [str(tmp_path)])
    assert "folder" in str(err)
    err = expect(errors.InvalidArgumentError, repo, hf_env, ["Hello, how are you today"])
    assert "is text, not audio" in str(err)


def test_unreadable_audio_is_an_invalid_file(hf_env, repo, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all")
    err = expect(errors.InvalidFileError, repo, hf_env, [str(bad)])
    assert err.fields["path"] == str(bad) and err.fields["position"] == 1


def test_audio_without_ffmpeg(hf_env, repo, files, reference, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    err = expect(errors.SystemDependencyError, repo, hf_env, [files["speech.wav"]])
    assert err.code == "system_dependency" and err.fields["program"] == "ffmpeg"
    assert "apt-get install ffmpeg" in str(err)
    silence = np.zeros(RATE)  # an array needs no ffmpeg
    want = reference({"raw": silence.astype(np.float32), "sampling_rate": RATE})["text"]
    assert run(repo, hf_env, [silence], sampling_rate=RATE)["text"] == [want]


@pytest.mark.parametrize(
    "inputs,args,fragment",
    [
        ([np.zeros(RATE)], {}, "give their sampling_rate"),
        ([np.zeros(RATE)], {"sampling_rate": 16}, "from 1000 to 768000"),  # kHz, not Hz
        ([np.zeros(RATE)], {"sampling_rate": 16000.5}, "whole number of Hz"),
        ([np.zeros(RATE)], {"sampling_rate": [16000, 8000]}, "one per input of samples"),
        ([np.full(RATE, 300.0)], {"sampling_rate": RATE}, "within -1 to 1"),
        ([np.array([0.1, np.nan])], {"sampling_rate": RATE}, "finite"),
        ([np.zeros((RATE, 2))], {"sampling_rate": RATE}, "one channel"),
        ([np.zeros(0)], {"sampling_rate": RATE}, "non-empty"),
        ([True], {}, "bool"),
        ([], {}, "empty"),
    ],
)
def test_bad_samples_and_rates(hf_env, repo, inputs, args, fragment):
    err = expect(errors.InvalidArgumentError, repo, hf_env, inputs, **args)
    assert fragment in str(err)


def test_sampling_rate_with_files_only(hf_env, repo, files):
    err = expect(
        errors.InvalidArgumentError, repo, hf_env, [files["speech.wav"]], sampling_rate=RATE
    )
    assert err.fields["argument"] == "sampling_rate"


def test_models_that_do_not_fit_the_task(hf_env, repo, mirror):
    from pybridge.fixtures import task_models as tm

    bert = tm.ensure(names=["bert"])["bert"]
    mirror.publish("hfbridge-tiny/audio-test-bert", bert)
    with pytest.raises(errors.UnsupportedError):
        P.load(TASK, "hfbridge-tiny/audio-test-bert", env=hf_env)
    with pytest.raises(errors.UnsupportedError):
        P.load("text-classification", repo, env=hf_env)
    err = expect(
        errors.InvalidArgumentError,
        repo,
        hf_env,
        [np.zeros(RATE)],
        sampling_rate=RATE,
        language="xx",
    )
    assert "xx" in str(err)


def test_the_task_is_listed_and_wav_files_are_plain_pcm(folders):
    assert TASK in P.supported_tasks()
    with wave.open(am.audio_files(folders["audio"])["speech.wav"]) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (1, RATE, 2)
    assert os.path.getsize(am.audio_files(folders["audio"])["long.wav"]) > 60 * RATE * 2
