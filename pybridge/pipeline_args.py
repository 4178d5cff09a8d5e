"""The arguments of each pipeline task, with their types and ranges: one table, checked before
transformers runs.

transformers checks few of them. ``top_k="two"`` gave one row per text, ``top_k=-1`` sliced
``[:-1]`` and dropped a row, and a misspelt name was ignored by some tasks. :func:`check` refuses
each of these with :class:`~pybridge.errors.InvalidArgumentError`, whose fields name the
argument, the task and the value. It also turns whole doubles from R into ints.
"""

from __future__ import annotations

import math

from . import errors


class Bad(ValueError):
    """A value that a spec refuses (the caller adds the argument and the task)."""


class Spec:
    """One argument's rule: ``describe`` says what it must be; ``__call__`` returns the value,
    normalised (whole floats as ints), or raises :class:`Bad`."""

    describe = ""

    def __call__(self, value):
        raise NotImplementedError


class Whole(Spec):
    def __init__(self, low=1, high=2**31 - 1, none=False):  # by default, what a C int takes
        self.low, self.high, self.none = low, high, none
        upper = f" and <= {high}" if high is not None else ""
        self.describe = f"a whole number >= {low}{upper}" + (", or NULL" if none else "")

    def __call__(self, value):
        if value is None and self.none:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= self.low
        if not ok or (self.high is not None and value > self.high):
            raise Bad()
        return value


class Number(Spec):
    """A finite number within ``low``..``high``; ``open`` names the bounds left out."""

    def __init__(self, low=None, high=None, open=()):
        self.low, self.high, self.open = low, high, open
        parts = []
        if low is not None:
            parts.append(f"{'>' if 'low' in open else '>='} {low}")
        if high is not None:
            parts.append(f"{'<' if 'high' in open else '<='} {high}")
        self.describe = "a number" + (" " + " and ".join(parts) if parts else "")

    def __call__(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Bad()
        if not math.isfinite(value):
            raise Bad()
        if self.low is not None and (
            value < self.low or ("low" in self.open and value == self.low)
        ):
            raise Bad()
        if self.high is not None and (
            value > self.high or ("high" in self.open and value == self.high)
        ):
            raise Bad()
        return value


class Flag(Spec):
    describe = "TRUE or FALSE"

    def __call__(self, value):
        if not isinstance(value, bool):
            raise Bad()
        return value


class Choice(Spec):
    """One of ``values`` (compared case-insensitively, as transformers' enums do)."""

    def __init__(self, *values):
        self.values = values
        self.describe = "one of " + ", ".join(f'"{v}"' for v in values)

    def __call__(self, value):
        if not isinstance(value, str) or value.lower() not in self.values:
            raise Bad()
        return value


class Text(Spec):
    """A string; ``empty`` allows "", ``template`` needs a ``{}`` for the label."""

    def __init__(self, empty=False, template=False):
        self.empty, self.template = empty, template
        self.describe = "a string" if empty else "a non-empty string"
        if template:
            self.describe = 'a string with {} where the label goes, e.g. "This text is about {}."'

    def __call__(self, value):
        if not isinstance(value, str) or (not value and not self.empty):
            raise Bad()
        if self.template:
            try:
                filled = value.format("label")
            except (IndexError, KeyError, ValueError) as exc:
                raise Bad() from exc
            if filled == value:
                raise Bad()
        return value


class Texts(Spec):
    describe = "a non-empty string or a vector of them"

    def __call__(self, value):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise Bad()
        if not all(isinstance(x, str) and x for x in items):
            raise Bad()
        return value


class TokenIds(Spec):
    """Token ids (whole numbers >= 0): one, or a vector; ``nested`` asks for a list of vectors
    (``bad_words_ids``)."""

    def __init__(self, single=True, nested=False):
        self.single, self.nested = single, nested
        self.describe = (
            "a list of vectors of token ids (whole numbers >= 0)"
            if nested
            else "a token id (a whole number >= 0)" + (" or a vector of them" if not single else "")
        )
        self.id = Whole(0)

    def _ids(self, value) -> list:
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise Bad()
        return [self.id(x) for x in items]

    def __call__(self, value):
        if self.nested:
            if not isinstance(value, (list, tuple)) or not value:
                raise Bad()
            return [self._ids(x) for x in value]
        if self.single:
            return self.id(value)
        return self._ids(value)


class Either(Spec):
    def __init__(self, *specs):
        self.specs = specs
        self.describe = ", or ".join(s.describe for s in specs)

    def __call__(self, value):
        for spec in self.specs:
            try:
                return spec(value)
            except Bad:
                continue
        raise Bad()


class Tools(Spec):
    """Tool definitions for a chat template: a list of named lists, one named list, or JSON text
    (:func:`pybridge.tokenizer.chat_tools` reads them)."""

    describe = "tool definitions: a list of named lists (OpenAI's JSON-schema shape), or JSON text"

    def __call__(self, value):
        if isinstance(value, (str, dict)):
            return value
        if not isinstance(value, (list, tuple)) or not all(isinstance(t, dict) for t in value):
            raise Bad()
        return value


class Options(Spec):
    """A named list of tokenizer options, each with its own spec."""

    def __init__(self, **specs):
        self.specs = specs
        self.describe = "a named list with any of " + ", ".join(specs)

    def __call__(self, value):
        if not isinstance(value, dict):
            raise Bad()
        out = {}
        for key, item in value.items():
            if key not in self.specs:
                raise Bad()
            out[key] = self.specs[key](item)
        return out


# ---------------------------------------------------------------------------------------------
# The table

COUNT = Whole(1)
# generation lengths and copies: beyond these, the buffers alone exceed any memory (a typo such
# as num_return_sequences = 2^31 had the OOM killer end the R session)
TOKENS = Whole(1, 2**20)
COPIES = Whole(1, 1024)
TRUNCATION = Either(Flag(), Choice("longest_first", "only_first", "only_second", "do_not_truncate"))
TOKENIZER_OPTIONS = Options(
    truncation=TRUNCATION,
    max_length=COUNT,
    add_special_tokens=Flag(),
    padding=Either(Flag(), Choice("longest", "max_length", "do_not_pad")),
)
# numpy's seed (set by transformers.set_seed) takes 0 to 2^32 - 1.
SEED = Whole(0, 2**32 - 1)

# generate() settings (transformers.GenerationConfig), with the ranges of its logits processors.
GENERATE = {
    "max_new_tokens": TOKENS,
    "max_length": TOKENS,
    "min_length": Whole(0, 2**20),
    "min_new_tokens": Whole(0, 2**20),
    "do_sample": Flag(),
    "num_beams": COPIES,
    "num_beam_groups": COPIES,
    "num_return_sequences": COPIES,
    "early_stopping": Either(Flag(), Choice("never")),
    "temperature": Number(0, open=("low",)),
    "top_k": Whole(0),
    "top_p": Number(0, 1),
    "typical_p": Number(0, 1, open=("low",)),
    "min_p": Number(0, 1),
    "epsilon_cutoff": Number(0, 1, open=("high",)),
    "eta_cutoff": Number(0, 1, open=("high",)),
    "repetition_penalty": Number(0, open=("low",)),
    "encoder_repetition_penalty": Number(0, open=("low",)),
    "length_penalty": Number(),
    "diversity_penalty": Number(0),
    "no_repeat_ngram_size": Whole(0),
    "encoder_no_repeat_ngram_size": Whole(0),
    "max_time": Number(0, open=("low",)),
    "use_cache": Flag(),
    "renormalize_logits": Flag(),
    "remove_invalid_values": Flag(),
    "bad_words_ids": TokenIds(nested=True),
    "suppress_tokens": TokenIds(single=False),
    "begin_suppress_tokens": TokenIds(single=False),
    "forced_bos_token_id": TokenIds(),
    "forced_eos_token_id": TokenIds(single=False),
    "eos_token_id": TokenIds(single=False),
    "pad_token_id": TokenIds(),
    "bos_token_id": TokenIds(),
    "decoder_start_token_id": TokenIds(),
}
SEQ2SEQ = {
    **GENERATE,
    "prefix": Text(empty=True),
    "truncation": TRUNCATION,
    "clean_up_tokenization_spaces": Flag(),
    "seed": SEED,
}

TASKS = {
    "text-classification": {
        "top_k": Whole(1, none=True),
        "function_to_apply": Choice("sigmoid", "softmax", "none"),
        "truncation": TRUNCATION,
        "max_length": COUNT,
    },
    "zero-shot-classification": {
        "candidate_labels": Texts(),
        "multi_label": Flag(),
        "hypothesis_template": Text(template=True),
    },
    "token-classification": {
        "aggregation_strategy": Choice("none", "simple", "first", "average", "max"),
        "ignore_labels": Texts(),
        "stride": COUNT,
    },
    "question-answering": {
        "question": Texts(),
        "context": Texts(),
        "top_k": COUNT,
        "max_answer_len": COUNT,
        "doc_stride": COUNT,
        "max_seq_len": COUNT,
        "max_question_len": COUNT,
        "handle_impossible_answer": Flag(),
        "align_to_words": Flag(),
    },
    "fill-mask": {"top_k": COUNT, "targets": Texts(), "tokenizer_kwargs": TOKENIZER_OPTIONS},
    "summarization": SEQ2SEQ,
    "translation": {**SEQ2SEQ, "src_lang": Text(), "tgt_lang": Text()},
    "text2text-generation": SEQ2SEQ,
    "text-generation": {
        **GENERATE,
        "seed": SEED,
        "return_full_text": Flag(),
        "prefix": Text(empty=True),
        "stop_sequence": Text(),
        "truncation": TRUNCATION,
        "handle_long_generation": Choice("hole"),
        "clean_up_tokenization_spaces": Flag(),
        "skip_special_tokens": Flag(),
    },
    "feature-extraction": {"tokenize_kwargs": TOKENIZER_OPTIONS, "truncation": TRUNCATION},
}
# Every task: the texts a forward pass takes at once (pipeline()'s batch_size, per call).
COMMON = {"batch_size": COUNT}
# text-generation called on messages (pybridge.generation.pipeline_reply): the generate()
# settings (num_return_sequences gives a row per reply), the seed, a stop text, tools for the
# template and return_full_text (FALSE only: the reply is the new message); the arguments about
# a prompt's text do not apply.
CHAT = {
    **GENERATE,
    "seed": SEED,
    "stop_sequence": Text(),
    "tools": Tools(),
    "return_full_text": Flag(),
}


def check(task: str, name: str, args: dict, table=None) -> dict:
    """``args`` checked against the table of the task ``name`` (canonical), or ``table`` when
    given; ``task`` is the name the user gave, for the messages. Returns them normalised."""
    specs = {**(TASKS[name] if table is None else table), **COMMON}
    out = {}
    for arg, value in args.items():
        spec = specs.get(arg)
        if spec is None:
            raise errors.InvalidArgumentError(
                f"{task} has no argument '{arg}'. Its arguments: {', '.join(sorted(specs))}.",
                argument=arg,
                task=task,
                value=shown(value),
            )
        try:
            out[arg] = spec(value)
        except Bad:
            raise refusal(task, arg, value, spec.describe) from None
    _check_together(task, out)
    return out


def _check_together(task, args) -> None:
    stride, length = args.get("doc_stride"), args.get("max_seq_len")
    if stride is not None and length is not None and stride >= length:
        raise refusal(task, "doc_stride", stride, f"smaller than max_seq_len ({length})")
    strategy = args.get("aggregation_strategy")
    if "stride" in args and strategy is not None and strategy.lower() == "none":
        raise refusal(
            task,
            "stride",
            args["stride"],
            "used with an aggregation_strategy other "
            'than "none" (it joins the windows of a long text)',
        )


def check_with_model(task, name, args, tokenizer) -> None:
    """The ranges that depend on the loaded model: its vocabulary and its longest input."""
    limit = tokenizer.model_max_length if tokenizer.model_max_length < 1e6 else None
    top_k = args.get("top_k")
    if (
        name == "fill-mask"
        and top_k is not None
        and "targets" not in args
        and top_k > len(tokenizer)
    ):
        raise refusal(task, "top_k", top_k, f"at most the vocabulary size ({len(tokenizer)})")
    if name == "token-classification" and limit and args.get("stride", 0) >= limit:
        raise refusal(
            task,
            "stride",
            args["stride"],
            f"smaller than the model's longest input ({limit} tokens)",
        )
    if name == "question-answering" and limit and args.get("max_seq_len", 0) > limit:
        raise refusal(
            task,
            "max_seq_len",
            args["max_seq_len"],
            f"at most the model's longest input ({limit} tokens)",
        )


def refusal(task, arg, value, must) -> errors.InvalidArgumentError:
    return errors.InvalidArgumentError(
        f"{task}: {arg} must be {must}; got {shown(value)}.",
        argument=arg,
        task=task,
        value=shown(value),
    )


def shown(value, limit=60) -> str:
    """A short, language-neutral view of a value for a message (whole floats without .0)."""
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, str):
        text = '"' + value + '"'
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(shown(v, limit) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {shown(v, limit)}" for k, v in value.items()) + "}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
