"""Text pipelines for R: transformers' own pipelines, with results as columns.

:func:`load` loads (or finds in the process cache of :mod:`pybridge.models`) the pipeline of a
task; :func:`run` calls it on a list of texts and returns a dict of equal-length columns that R
turns into a data.frame (``feature-extraction`` returns stacked token vectors and their counts).
Character offsets go to R 1-based and inclusive, so that ``substr(text, start, end)`` works.

transformers 5 removed the pipelines of question-answering, summarization, translation and
text2text-generation. For those tasks the model runs the way transformers 4's pipelines did
(:mod:`pybridge.removed_pipelines`): the tokenizer, the model's logits or ``generate()``, and
the same post-processing.

torch and transformers are imported on the first load, never at import.
"""

from __future__ import annotations

import numpy as np

from . import _args, audio, errors, fastpath, jobs, models, pipeline_args, vision
from .removed_pipelines import QuestionAnswering, Seq2Seq

ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}
NATIVE = (
    "text-classification",
    "zero-shot-classification",
    "token-classification",
    "fill-mask",
    "text-generation",
    "feature-extraction",
)
OWN = ("question-answering", "summarization", "translation", "text2text-generation")
# Tasks with one output per text and no sampling: batches of texts of alike length waste less on
# padding, so their texts go through the pipeline longest first (see length_order()).
LENGTH_SORTED = (
    "text-classification",
    "zero-shot-classification",
    "token-classification",
    "fill-mask",
    "feature-extraction",
)
# transformers 4's defaults for the tasks transformers 5 removed.
OWN_DEFAULTS = {
    "question-answering": "distilbert/distilbert-base-cased-distilled-squad",
    "summarization": "sshleifer/distilbart-cnn-12-6",
    "translation": "google-t5/t5-base",
    "text2text-generation": "google-t5/t5-base",
}


def supported_tasks() -> list:
    """The task names pipeline() accepts, aliases included."""
    return [
        "text-classification",
        "sentiment-analysis",
        "zero-shot-classification",
        "token-classification",
        "ner",
        "question-answering",
        "fill-mask",
        "summarization",
        "translation",
        "text2text-generation",
        "text-generation",
        "feature-extraction",
        *vision.TASKS,  # images (pybridge.vision)
        *audio.TASKS,  # speech (pybridge.audio)
    ]


def canonical(task) -> str:
    """The task's own name: aliases resolved, ``translation_en_to_fr`` is ``translation``."""
    if not isinstance(task, str) or not task:
        raise errors.InvalidArgumentError(
            "task must be a single string such as 'sentiment-analysis'.", argument="task"
        )
    name = ALIASES.get(task, task)
    if name.startswith("translation_") and "_to_" in name:
        name = "translation"
    if name not in NATIVE + OWN + vision.TASKS + audio.TASKS:
        raise errors.UnsupportedError(
            f"The task '{task}' is not supported. Supported tasks: {', '.join(supported_tasks())}.",
            task=task,
            supported=supported_tasks(),
        )
    return name


def default_model(task: str) -> str:
    """The model transformers uses for the task when none is given."""
    name = canonical(task)
    if name in OWN_DEFAULTS:
        return OWN_DEFAULTS[name]
    if name in vision.DEFAULTS:
        return vision.DEFAULTS[name]
    models.import_transformers()
    from transformers.pipelines import SUPPORTED_TASKS

    default = SUPPORTED_TASKS[name]["default"]["model"]
    if isinstance(default, dict):
        default = default.get("pt") or next(iter(default.values()))
    return default[0]


def load(
    task,
    model=None,
    revision="main",
    device="cpu",
    allow_pickle=False,
    trust_remote_code=False,
    env=None,
    token=None,
    quiet=True,
    args=None,
    backend="torch",
    precision="fp32",
) -> dict:
    """Load the task's pipeline into the cache; returns what R prints and passes to :func:`run`.

    ``args``, the default arguments of the task's calls, are checked first
    (:func:`pybridge.pipeline_args.check`), so that a bad one fails before the model loads.
    ``backend`` and ``precision`` other than torch fp32 take the fast path
    (:mod:`pybridge.fastpath`); ``fastpath`` is then its quality record.
    """
    name = canonical(task)
    args = _check_args(task, name, args)
    fast = _fast(name, backend, precision)
    model = model or default_model(name)
    pipe = _entry(
        name, model, revision, device, allow_pickle, trust_remote_code, env, token, quiet, fast
    )
    if name not in vision.TASKS + audio.TASKS:
        pipeline_args.check_with_model(task, name, args, pipe.tokenizer)
    return {
        "task": task,
        "kind": name,
        "model": model,
        "revision": revision or "main",
        "device": str(device),
        "fastpath": getattr(pipe, "fastpath", None),
    }


def _fast(name, backend, precision) -> tuple:
    """(backend, precision), checked: the fast path takes only the tasks it can measure."""
    fast = fastpath.choice(backend, precision)
    if fast != ("torch", "fp32"):
        fastpath.head_of(name)
    return fast


def run(
    task,
    inputs=None,
    model=None,
    revision="main",
    device="cpu",
    batch_size=None,
    args=None,
    allow_pickle=False,
    trust_remote_code=False,
    env=None,
    token=None,
    backend="torch",
    precision="fp32",
):
    """Run the task's pipeline on ``inputs`` (a list of str) with the task's own ``args``.

    Returns columns; ``text_id`` is 1-based. ``args`` are checked against the task's table in
    :mod:`pybridge.pipeline_args` before the model runs. Question answering takes
    ``args['question']`` and ``args['context']`` instead of ``inputs``. ``args['seed']`` seeds
    torch first (sampling), as ``transformers.set_seed(seed)`` before the pipeline call does in
    Python.
    """
    job = start(
        task,
        inputs,
        model,
        revision,
        device,
        batch_size,
        args,
        allow_pickle,
        trust_remote_code,
        env,
        token,
        backend,
        precision,
    )
    return jobs.run(job)


def start(
    task,
    inputs=None,
    model=None,
    revision="main",
    device="cpu",
    batch_size=None,
    args=None,
    allow_pickle=False,
    trust_remote_code=False,
    env=None,
    token=None,
    backend="torch",
    precision="fp32",
) -> "Job":
    """A job over the inputs: the pipeline called once, lazily, on a generator of them.

    R pulls the results in steps (:func:`pybridge.jobs.step`) to move a progress bar. One call
    of the pipeline over the whole input consumes the random numbers as one Python call does, so
    that a seeded generation gives the same texts as in Python, however many steps R takes.
    """
    name = canonical(task)
    args = _check_args(task, name, args)
    if name in vision.TASKS:  # images: checked before the model loads
        inputs = vision.check_images(inputs)
    if name in audio.TASKS:  # speech: files and samples, checked before the model loads
        audio_inputs = audio.check_inputs(inputs, args)
    fast = _fast(name, backend, precision)
    model = model or default_model(name)
    pipe = _entry(
        name, model, revision, device, allow_pickle, trust_remote_code, env, token, True, fast
    )
    if name in vision.TASKS:
        return vision.start(task, name, pipe, inputs, args, batch_size)
    if name in audio.TASKS:
        return audio.start(task, name, pipe, audio_inputs, args, batch_size)
    pipeline_args.check_with_model(task, name, args, pipe.tokenizer)
    if batch_size is not None:
        args["batch_size"] = _args.count(batch_size, "batch_size")
    if name == "question-answering":
        items = QuestionAnswering.pairs(args.pop("question", inputs), args.pop("context", None))
    else:
        items = _args.texts(inputs, "inputs")
    if name == "zero-shot-classification" and not args.get("candidate_labels"):
        raise errors.InvalidArgumentError(
            "zero-shot-classification needs candidate_labels, e.g. candidate_labels = "
            "c('sport', 'politics').",
            argument="candidate_labels",
            task=task,
        )
    if name != "question-answering":  # its inputs are pairs, which it splits itself
        check_lengths(name, pipe, items, args)
    seed = args.pop("seed", None)
    if seed is not None:
        models.import_transformers().set_seed(seed)
    order = None
    if name in LENGTH_SORTED and args.get("batch_size", 1) > 1 and len(items) > 1:
        order = length_order(pipe.tokenizer, items)
    if name in OWN:
        outputs = pipe.iterate(items, task=task, **args)
    else:
        feed = items if order is None else [items[i] for i in order]
        outputs = iter(pipe((x for x in feed), **args)) if items else iter(())
    return Job(name, pipe, items, outputs, args, order, task)


# Tasks whose pipeline fails on a text longer than the model's positions (a tensor size error),
# unless it truncates.
UNTRUNCATED_FAIL = (
    "text-classification",
    "token-classification",
    "fill-mask",
    "feature-extraction",
)


def check_lengths(name, pipe, items, args) -> None:
    """Texts the model cannot take are refused, naming them, before the model runs: longer than
    its positions (without ``truncation``), a prompt plus ``max_new_tokens`` past a GPT-2-like
    model's ``n_positions`` (where generate() fails with an index error), or, for a
    sequence-to-sequence model with relative positions (T5), a text whose attention alone would
    not fit in memory."""
    config = getattr(getattr(pipe, "model", None), "config", None)
    if name.startswith(OWN[1:]) and not _truncates(args):
        return _check_attention_memory(name, pipe, items, config)
    if name == "text-generation" and generation_positions(config) is None:
        return _check_attention_memory(name, pipe, items, config)
    if name == "text-generation":
        limit = generation_positions(config)
        room = args.get("max_new_tokens") or 0
        advice = "Lower max_new_tokens, or shorten the prompts."
    elif name in UNTRUNCATED_FAIL and not _truncates(args):
        limit = models.token_limit(pipe.tokenizer, config)
        room = 0
        if name == "token-classification" and _cuts_itself(pipe.tokenizer, limit):
            return
        advice = TRUNCATE_ADVICE.get(name, TRUNCATE_ADVICE[None])
    else:
        return
    if not limit:
        return
    over = [i + 1 for i, n in _over(pipe.tokenizer, items, limit - room)]
    if over:
        texts = f"text {', '.join(map(str, over[:10]))}{' ...' if len(over) > 10 else ''}"
        raise too_long(name, texts, limit, room, advice, argument="inputs", texts=over)


def generation_positions(config):
    """The tokens a GPT-2-like model generates over (its ``n_positions``), prompt and new tokens
    together, past which generate() fails with an index error; None for a model without such a
    table (rotary or relative positions: only :func:`_check_attention_memory` bounds those)."""
    limit = getattr(config, "n_positions", None)
    return limit if isinstance(limit, int) and limit > 0 else None


def too_long(name, subject, limit, room, advice, **fields) -> errors.InvalidArgumentError:
    """The refusal of ``subject`` (a text, a conversation) that the model cannot take."""
    return errors.InvalidArgumentError(
        f"{name}: {subject} {'needs' if room else 'has'} more than the {limit} tokens this "
        "model takes. " + advice,
        **fields,
    )


def _over(tokenizer, items, limit) -> list:
    """(position, tokens) of the texts with more than ``limit`` tokens. A token covers at least
    one byte of the text, bar the few special tokens around it: only texts that could be too
    long are tokenized, and first only their start (BPE's time grows with the square of a
    word's length, so a 10^6-character word would take minutes); a start already too long
    settles it, and the whole text's tokens are then estimated from it."""
    if limit < 1:  # max_new_tokens alone fills the model's positions
        return [(i, len(text)) for i, text in enumerate(items)]
    maybe = [
        i
        for i, text in enumerate(items)
        if len(text) + 8 > limit and len(text.encode("utf-8")) + 8 > limit
    ]
    width = (limit + 8) * PREFIX_CHARS_PER_TOKEN
    counts = dict(zip(maybe, token_counts(tokenizer, [items[i][:width] for i in maybe])))
    cut = [i for i in maybe if len(items[i]) > width]
    for i in cut:
        if counts[i] > limit:
            counts[i] = counts[i] * len(items[i]) // width
    whole = [i for i in cut if counts[i] <= limit]
    counts.update(zip(whole, token_counts(tokenizer, [items[i] for i in whole])))
    return [(i, counts[i]) for i in maybe if counts[i] > limit]


def token_counts(tokenizer, texts) -> list:
    if not texts:
        return []
    with models.quiet_transformers():  # not its warning that these texts are too long
        return [len(ids) for ids in tokenizer(texts)["input_ids"]]


PREFIX_CHARS_PER_TOKEN = 32  # more than any vocabulary's tokens hold, bar unknown words


def _check_attention_memory(name, pipe, items, config) -> None:
    """The attention of the longest text must fit in memory: T5 (and a rotary model) takes any
    length, and 50,000 tokens had the OOM killer end R."""
    room = getattr(pipe.tokenizer, "model_max_length", None)
    room = room if isinstance(room, int) and 0 < room < 10**6 else 512
    long = _over(pipe.tokenizer, items, room)
    if not long:
        return
    position, tokens = max(long, key=lambda found: found[1])
    models.check_attention_memory(
        config,
        tokens,
        f"{name} of text {position + 1} ({tokens} tokens)",
        "Shorten the prompts."
        if name == "text-generation"
        else "Pass truncation = TRUE to cut the texts to the model's length, or split them.",
    )


TRUNCATE_ADVICE = {
    "fill-mask": "Pass tokenizer_kwargs = list(truncation = TRUE) to cut them to the model's "
    "length, or split them.",
    "token-classification": "Split them: this model's tokenizer has no model_max_length to "
    "cut them at.",
    None: "Pass truncation = TRUE to cut them to the model's length, or split them.",
}


def _cuts_itself(tokenizer, limit) -> bool:
    """transformers' token-classification pipeline cuts a text at the tokenizer's
    model_max_length (or windows it with ``stride``): fine where that length fits the model."""
    length = getattr(tokenizer, "model_max_length", None)
    return isinstance(length, int) and bool(limit) and 0 < length <= limit


def _truncates(args) -> bool:
    kwargs = args.get("tokenize_kwargs") or args.get("tokenizer_kwargs") or {}
    return bool(args.get("truncation") or kwargs.get("truncation"))


def _check_args(task, name, args) -> dict:
    if name in vision.TASKS:
        return vision.check_args(task, name, dict(args or {}))
    if name in audio.TASKS:
        return audio.check_args(task, name, dict(args or {}))
    return pipeline_args.check(task, name, dict(args or {}))


def length_order(tokenizer, texts) -> list:
    """Positions of ``texts``, longest (in tokens) first. transformers' pipelines pad each batch
    to its longest text in the order given, which on texts of mixed lengths costs about as
    much as the texts themselves."""
    lengths = [len(ids) for ids in tokenizer(list(texts))["input_ids"]]
    return sorted(range(len(texts)), key=lambda i: -lengths[i])


class Job(jobs.PipelineJob):
    """One pipeline call over many inputs, consumed step by step; its units are inputs. The
    result is the columns (or stacked matrices for feature-extraction)."""

    @property
    def refused(self):
        """transformers' refusals of an input (no mask token for fill-mask, say), as well."""
        return (ValueError, models.import_transformers().pipelines.PipelineException)

    def __init__(self, name, pipe, items, outputs, args, order=None, task=None):
        super().__init__(task, items, outputs)
        self.name, self.pipe, self.args = name, pipe, args
        self.order = order  # the position in items of each output, when not in input order

    def output(self):
        if self.order is not None:
            results = [None] * len(self.results)
            for output, position in zip(self.results, self.order):
                results[position] = output
            self.results, self.order = results, None
        return _CONVERTERS[self.name](self)


# ---------------------------------------------------------------------------------------------
# Loading


def text_generator(
    model,
    revision="main",
    device="cpu",
    allow_pickle=False,
    trust_remote_code=False,
    env=None,
    token=None,
    quiet=True,
):
    """transformers' text-generation pipeline of ``model``, from the cache (or loaded into it):
    :class:`pybridge.generation.LocalChat` answers with its model and tokenizer, so a chat and a
    pipeline of the same model share one load."""
    name = "text-generation"
    return _entry(name, model, revision, device, allow_pickle, trust_remote_code, env, token, quiet)


def _entry(
    name, model, revision, device, allow_pickle, trust_remote_code, env, token, quiet, fast=None
):
    fast = fast or ("torch", "fp32")
    kind = "pipeline:" + name + ("" if fast == ("torch", "fp32") else " ({} {})".format(*fast))
    key = models.cache_key(kind, model, revision, device, allow_pickle, trust_remote_code, env)

    def loader():
        path = models.folder(model, revision, allow_pickle, env=env, token=token, quiet=quiet)
        dev = models.torch_device(device)
        with models.quiet_transformers():
            try:
                if fast != ("torch", "fp32"):
                    return fastpath.pipeline(name, path, dev, *fast, bool(trust_remote_code), env)
                return _build(
                    name, path, dev, models.use_safetensors(path), bool(trust_remote_code)
                )
            except errors.PybridgeError:
                raise
            except Exception as exc:  # noqa: BLE001 - transformers raises many kinds here
                raise models.load_error(exc, model, name, supported_tasks()) from exc

    return models.cached(key, loader)


def _build(name, path, dev, use_safetensors, trust_remote_code):
    transformers = models.import_transformers()

    kwargs = {"trust_remote_code": trust_remote_code, "use_safetensors": use_safetensors}
    if name in vision.TASKS:
        return vision.build(name, path, dev, use_safetensors, trust_remote_code)
    if name in audio.TASKS:
        return audio.build(name, path, dev, use_safetensors, trust_remote_code)
    if name in NATIVE:
        audio.refuse_speech_model(path)  # transformers would load it, and fail on a text
        return transformers.pipeline(
            name,
            model=path,
            device=dev,
            trust_remote_code=trust_remote_code,
            model_kwargs={"use_safetensors": use_safetensors},
        )
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        path, trust_remote_code=trust_remote_code
    )
    if name == "question-answering":
        auto = transformers.AutoModelForQuestionAnswering
        return QuestionAnswering(auto.from_pretrained(path, **kwargs).to(dev).eval(), tokenizer)
    auto = transformers.AutoModelForSeq2SeqLM
    return Seq2Seq(auto.from_pretrained(path, **kwargs).to(dev).eval(), tokenizer, name)


# ---------------------------------------------------------------------------------------------
# Arguments


def _ids(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


def _floats(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# transformers' pipelines, as columns


def _text_classification(job):
    ids, text, label, score = [], [], [], []
    for i, res in enumerate(job.results):
        for r in [res] if isinstance(res, dict) else res:
            ids.append(i + 1)
            text.append(job.items[i])
            label.append(str(r["label"]))
            score.append(r["score"])
    return {"text_id": _ids(ids), "text": text, "label": label, "score": _floats(score)}


def _zero_shot(job):
    ids, label, score = [], [], []
    for i, res in enumerate(job.results):
        ids += [i + 1] * len(res["labels"])
        label += [str(x) for x in res["labels"]]
        score += list(res["scores"])
    return {"text_id": _ids(ids), "label": label, "score": _floats(score)}


def _token_classification(job):
    rows = [(i + 1, r) for i, res in enumerate(job.results) for r in res]
    grouped = job.args.get("aggregation_strategy") not in (None, "none", "NONE")
    key = "entity_group" if grouped or (rows and "entity_group" in rows[0][1]) else "entity"
    return {
        "text_id": _ids([i for i, _ in rows]),
        key: [str(r[key]) for _, r in rows],
        "score": _floats([r["score"] for _, r in rows]),
        "word": [str(r["word"]) for _, r in rows],
        "start": _ids([-1 if r.get("start") is None else r["start"] + 1 for _, r in rows]),
        "end": _ids([-1 if r.get("end") is None else r["end"] for _, r in rows]),
    }


def _fill_mask(job):
    """One row per candidate token of each mask; ``mask`` says which mask of the text (a text
    with several gets a list of candidates per mask)."""
    ids, mask, token_id, token_str, score, sequence = [], [], [], [], [], []
    for i, res in enumerate(job.results):
        per_mask = res if res and isinstance(res[0], list) else [res]
        for m, candidates in enumerate(per_mask):
            for r in candidates:
                ids.append(i + 1)
                mask.append(m + 1)
                token_id.append(r["token"])
                token_str.append(str(r["token_str"]))
                score.append(r["score"])
                sequence.append(str(r["sequence"]))
    return {
        "text_id": _ids(ids),
        "mask": _ids(mask),
        "token_id": _ids(token_id),
        "token_str": token_str,
        "score": _floats(score),
        "sequence": sequence,
    }


def _text_generation(job):
    ids, prompt, generated = [], [], []
    for i, res in enumerate(job.results):
        for r in [res] if isinstance(res, dict) else res:
            ids.append(i + 1)
            prompt.append(job.items[i])
            generated.append(str(r["generated_text"]))
    return {"text_id": _ids(ids), "prompt": prompt, "generated_text": generated}


def _feature_extraction(job):
    """Each text's token x hidden matrix. With batch_size > 1, transformers returns a text's rows
    padded to its batch's longest text; the padding rows are dropped."""
    tokenize_kwargs = job.args.get("tokenize_kwargs") or {}
    left = job.pipe.tokenizer.padding_side == "left"
    mats, tokens = [], []
    for text, out in zip(job.items, job.results):
        mat = np.asarray(_tensor(out)[0], dtype=np.float64)
        toks = job.pipe.tokenizer(text, **tokenize_kwargs).tokens()
        if len(toks) < mat.shape[0]:
            mat = mat[mat.shape[0] - len(toks) :] if left else mat[: len(toks)]
        mats.append(mat)
        tokens += toks if len(toks) == mat.shape[0] else [""] * mat.shape[0]
    hidden = mats[0].shape[1] if mats else 0
    values = np.concatenate(mats) if mats else np.zeros((0, hidden))
    return {"values": values, "lengths": _ids([m.shape[0] for m in mats]), "tokens": tokens}


def _tensor(x):
    """A pipeline output as numpy (a torch tensor with return_tensors, else nested lists)."""
    return x.float().cpu().numpy() if hasattr(x, "numpy") else np.asarray(x)


def _generated(job):
    ids = [i + 1 for i, res in enumerate(job.results) for _ in res]
    return {"text_id": _ids(ids), "generated_text": [str(g) for res in job.results for g in res]}


def _answers(job):
    cols = {"question": [], "context": [], "answer": [], "score": [], "start": [], "end": []}
    for (q, c), answers in zip(job.items, job.results):
        for a in answers:
            cols["question"].append(q)
            cols["context"].append(c)
            cols["answer"].append(c[a["start"] : a["end"]])
            cols["score"].append(a["score"])
            cols["start"].append(a["start"] + 1)
            cols["end"].append(a["end"])
    cols["score"] = _floats(cols["score"])
    cols["start"], cols["end"] = _ids(cols["start"]), _ids(cols["end"])
    return cols


_CONVERTERS = {
    "text-classification": _text_classification,
    "zero-shot-classification": _zero_shot,
    "token-classification": _token_classification,
    "fill-mask": _fill_mask,
    "text-generation": _text_generation,
    "feature-extraction": _feature_extraction,
    "question-answering": _answers,
    "summarization": _generated,
    "translation": _generated,
    "text2text-generation": _generated,
}
