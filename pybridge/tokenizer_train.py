"""Training a new tokenizer with the ``tokenizers`` trainers, set up as the models they imitate:
byte-level BPE as GPT-2, WordPiece as BERT, Unigram as T5/sentencepiece. The result is a
``tokenizers.Tokenizer``, the handle :mod:`pybridge.tokenizer` works on (R: tokenizer_train.R).
"""

from __future__ import annotations

import os

from tokenizers import Tokenizer

from . import _args, errors

MODEL_TYPES = ("bpe", "wordpiece", "unigram")


def train(
    texts=None,
    files=None,
    model="bpe",
    vocab_size=None,
    min_frequency=None,
    special_tokens=None,
    show_progress=False,
) -> Tokenizer:
    """A new tokenizer trained on ``texts`` (strings) or ``files`` (paths, read line by line).

    - "bpe": byte-level BPE as GPT-2 (ByteLevel pre-tokenizer, decoder and post-processor);
      special tokens default to ``<|endoftext|>``.
    - "wordpiece": as BERT (BertNormalizer lowercasing, BertPreTokenizer, ``[CLS] $A [SEP]``);
      special tokens default to [PAD] [UNK] [CLS] [SEP] [MASK].
    - "unigram": as T5/sentencepiece (NFKC, Metaspace, ``$A </s>``); special tokens default to
      <pad> </s> <unk>.
    """
    model = _args.choice(model, MODEL_TYPES, "type")
    if (texts is None) == (files is None):
        raise errors.InvalidArgumentError(
            "Give either texts or files to train on.", argument="texts"
        )
    build = {"bpe": _bpe_pipeline, "wordpiece": _wordpiece_pipeline, "unigram": _unigram_pipeline}[
        model
    ]
    kwargs = {"show_progress": bool(show_progress)}
    if vocab_size is not None:
        kwargs["vocab_size"] = _args.count(vocab_size, "vocab_size", minimum=1)
    if min_frequency is not None:
        if model == "unigram":
            raise errors.InvalidArgumentError(
                "min_frequency applies to bpe and wordpiece; the unigram trainer has none.",
                argument="min_frequency",
            )
        kwargs["min_frequency"] = _args.count(min_frequency, "min_frequency", minimum=0)
    tok, trainer, finish = build(special_tokens, kwargs)
    try:
        if files is not None:
            files = [os.path.expanduser(f) for f in _args.texts(files, "files")]
            missing = [f for f in files if not os.path.isfile(f)]
            if missing:
                raise errors.InvalidArgumentError(
                    f"No such file: {', '.join(missing[:5])}", argument="files", path=missing[0]
                )
            tok.train(files, trainer)
        else:
            texts = _args.texts(texts, "texts")
            tok.train_from_iterator(texts, trainer, length=len(texts))
    except errors.PybridgeError:
        raise
    except Exception as exc:
        raise errors.InvalidArgumentError(f"Training failed: {exc}") from None
    finish(tok)
    return tok


def _bpe_pipeline(special_tokens, kwargs):
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers

    special = list(special_tokens) if special_tokens is not None else ["<|endoftext|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), **kwargs
    )
    return tok, trainer, lambda t: None


def _wordpiece_pipeline(special_tokens, kwargs):
    from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

    special = (
        list(special_tokens)
        if special_tokens is not None
        else ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    unk = "[UNK]" if "[UNK]" in special else None
    tok = Tokenizer(models.WordPiece(unk_token=unk) if unk else models.WordPiece())
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        special_tokens=special, continuing_subword_prefix="##", **kwargs
    )
    return (
        tok,
        trainer,
        lambda t: _template(t, "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1", ["[CLS]", "[SEP]"]),
    )


def _unigram_pipeline(special_tokens, kwargs):
    from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

    special = list(special_tokens) if special_tokens is not None else ["<pad>", "</s>", "<unk>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    unk = "<unk>" if "<unk>" in special else None
    trainer = trainers.UnigramTrainer(special_tokens=special, unk_token=unk, **kwargs)
    return tok, trainer, lambda t: _template(t, "$A </s>", "$A </s> $B:1 </s>:1", ["</s>"])


def _template(tok, single, pair, needed):
    """Adds the post-processor when the special tokens it needs are in the vocabulary."""
    from tokenizers import processors

    ids = [tok.token_to_id(t) for t in needed]
    if all(i is not None for i in ids):
        tok.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=list(zip(needed, ids))
        )
