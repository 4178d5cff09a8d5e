"""The text pipelines transformers 5 removed, run as transformers 4.57's pipelines ran them.

transformers 5 has no pipeline for question-answering, summarization, translation and
text2text-generation. :mod:`pybridge.pipeline` builds, for those tasks, a :class:`Seq2Seq` or a
:class:`QuestionAnswering` from the model and its tokenizer; they run the tokenizer, the model's
logits or ``generate()``, and transformers 4's post-processing. tests/test_pipeline.py compares
them with transformers 4.57's own pipelines.
"""

from __future__ import annotations

import numpy as np

from . import errors, models


class Seq2Seq:
    """summarization, translation and text2text-generation, as transformers 4 ran them.

    The input gets the task's prefix (``prefix=`` or ``config.task_specific_params``, e.g.
    "summarize: "). Generation settings come first from the call, then from the task's
    ``task_specific_params``, then from the model's generation config, then from the pipeline's
    defaults (:data:`SEQ2SEQ_DEFAULTS`). ``model.generate()`` runs, and the output is decoded
    without special tokens.
    """

    # transformers 4.57's pipelines: "unless the model you're using explicitly sets these
    # generation parameters in its configuration files", beam search over 4 beams.
    SEQ2SEQ_DEFAULTS = {"max_new_tokens": 256, "num_beams": 4}

    def __init__(self, model, tokenizer, name):
        self.model, self.tokenizer, self.name = model, tokenizer, name

    def _task_params(self, task, src_lang=None, tgt_lang=None) -> dict:
        params = getattr(self.model.config, "task_specific_params", None) or {}
        if self.name == "translation":
            if src_lang and tgt_lang:
                task = f"translation_{src_lang}_to_{tgt_lang}"
            elif task == "translation":
                keys = [k for k in params if k.startswith("translation_")]
                task = keys[0] if len(keys) == 1 else task
        return dict(params.get(task) or params.get(self.name) or {})

    def iterate(
        self,
        texts,
        task=None,
        batch_size=1,
        prefix=None,
        src_lang=None,
        tgt_lang=None,
        truncation=False,
        clean_up_tokenization_spaces=False,
        **gen,
    ):
        """Yields, for each text, the list of its generated texts."""
        params = self._task_params(task or self.name, src_lang, tgt_lang)
        if prefix is None:
            prefix = getattr(self.model.config, "prefix", None) or params.get("prefix") or ""
        for key, value in params.items():
            if key != "prefix":
                gen.setdefault(key, value)
        for key, value in self._pipeline_defaults(gen).items():
            gen.setdefault(key, value)
        decode = {
            "skip_special_tokens": True,
            "clean_up_tokenization_spaces": clean_up_tokenization_spaces,
        }
        return self._generate(texts, prefix, batch_size, truncation, decode, gen)

    def _pipeline_defaults(self, gen) -> dict:
        """The defaults that neither the model's generation config nor the call sets. A
        max_length (the model's, other than the global 20, or the call's) wins over the default
        max_new_tokens."""
        own = self.model.generation_config.to_diff_dict()
        defaults = {k: v for k, v in self.SEQ2SEQ_DEFAULTS.items() if k not in own}
        if own.get("max_length", 20) != 20 or "max_length" in gen:
            defaults.pop("max_new_tokens", None)
        return defaults

    def _generate(self, texts, prefix, batch_size, truncation, decode, gen):
        torch = models.import_torch()

        for start in range(0, len(texts), batch_size):
            chunk = [prefix + t for t in texts[start : start + batch_size]]
            enc = self.tokenizer(
                chunk, padding=len(chunk) > 1, truncation=truncation, return_tensors="pt"
            ).to(self.model.device)
            enc.pop("token_type_ids", None)
            with torch.inference_mode():
                out = self.model.generate(**enc, **gen)
            texts_out = self.tokenizer.batch_decode(out, **decode)
            per_text = len(texts_out) // len(chunk)
            for k in range(len(chunk)):
                yield texts_out[k * per_text : (k + 1) * per_text]


class QuestionAnswering:
    """Extractive question answering, as transformers 4's pipeline did it.

    The context is split into windows of ``max_seq_len`` tokens overlapping by ``doc_stride``;
    the start and end logits of context tokens are turned into probabilities; the best spans of
    at most ``max_answer_len`` tokens win, scored by p(start) * p(end), and are widened to whole
    words (``align_to_words``).
    """

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer

    @staticmethod
    def pairs(question, context) -> list:
        """(question, context) pairs; one context serves every question."""
        questions = [question] if isinstance(question, str) else list(question or [])
        contexts = [context] if isinstance(context, str) else list(context or [])
        if len(contexts) == 1 and len(questions) > 1:
            contexts = contexts * len(questions)
        ok = all(isinstance(x, str) and x for x in questions + contexts)
        if not questions or len(questions) != len(contexts) or not ok:
            raise errors.InvalidArgumentError(
                "question-answering needs question = and context = : non-empty strings, one "
                "context or one per question.",
                argument="context",
            )
        return list(zip(questions, contexts))

    def iterate(
        self,
        pairs,
        task=None,
        top_k=1,
        doc_stride=None,
        max_answer_len=15,
        max_seq_len=None,
        max_question_len=64,
        handle_impossible_answer=False,
        align_to_words=True,
        batch_size=None,
    ):
        """Yields, for each (question, context), its best answers (the arguments are checked
        by :mod:`pybridge.pipeline_args`)."""
        for q, c in pairs:
            yield self.answer(
                q,
                c,
                top_k,
                doc_stride,
                max_answer_len,
                max_seq_len,
                handle_impossible_answer,
                align_to_words,
            )

    def answer(
        self,
        question,
        context,
        top_k,
        doc_stride,
        max_answer_len,
        max_seq_len,
        handle_impossible_answer,
        align_to_words,
    ) -> list:
        torch = models.import_torch()

        tok = self.tokenizer
        max_seq_len = max_seq_len or min(tok.model_max_length, 384)
        doc_stride = doc_stride or min(max_seq_len // 2, 128)
        question_first = tok.padding_side == "right"
        enc = tok(
            text=question if question_first else context,
            text_pair=context if question_first else question,
            truncation="only_second" if question_first else "only_first",
            max_length=max_seq_len,
            stride=doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        context_seq = 1 if question_first else 0
        answers, min_null = [], 1e6
        candidates = top_k * 2 + 10 if align_to_words else top_k  # aligning merges some
        names = set(tok.model_input_names)
        for span in range(len(enc["input_ids"])):
            feed = {
                k: torch.tensor([enc[k][span]], device=self.model.device)
                for k in ("input_ids", "attention_mask", "token_type_ids")
                if k in enc and k in names
            }
            with torch.inference_mode():
                out = self.model(**feed)
            allowed = np.array([s == context_seq for s in enc.sequence_ids(span)])
            if tok.cls_token_id is not None:
                allowed |= np.array(enc["input_ids"][span]) == tok.cls_token_id
            start, end = (x[0].float().cpu().numpy() for x in (out.start_logits, out.end_logits))
            starts, ends, scores, min_null = _select_spans(
                start, end, allowed, candidates, max_answer_len, handle_impossible_answer, min_null
            )
            encoding = enc.encodings[span]
            for s, e, score in zip(starts, ends, scores):
                a, b = _char_span(encoding, s, e, context_seq, align_to_words)
                _add_answer(answers, context, a, b, float(score))
        if handle_impossible_answer:
            answers.append({"score": float(min_null), "start": 0, "end": 0})
        return sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]


def _add_answer(answers, context, a, b, score) -> None:
    """Adds a candidate span; as in transformers 4, a text already found (in another window, or
    from other tokens of the same words; case-insensitive) adds its score to the first one."""
    text = context[a:b].lower()
    for answer in answers:
        if context[answer["start"] : answer["end"]].lower() == text:
            answer["score"] += score
            return
    answers.append({"score": score, "start": a, "end": b})


def _select_spans(start, end, allowed, top_k, max_answer_len, handle_impossible, min_null):
    """transformers 4's select_starts_ends + decode_spans, for one window."""
    start = np.where(allowed, start, -10000.0)
    end = np.where(allowed, end, -10000.0)
    start = np.exp(start - start.max())
    start = start / start.sum()
    end = np.exp(end - end.max())
    end = end / end.sum()
    if handle_impossible:
        min_null = min(min_null, float(start[0] * end[0]))
    start[0] = end[0] = 0.0
    outer = np.tril(np.triu(np.outer(start, end)), max_answer_len - 1)
    flat = outer.flatten()
    if top_k == 1:
        order = np.array([np.argmax(flat)])
    elif len(flat) <= top_k:
        order = np.argsort(-flat, kind="stable")
    else:
        idx = np.argpartition(-flat, top_k)[:top_k]
        order = idx[np.argsort(-flat[idx], kind="stable")]
    starts, ends = np.unravel_index(order, outer.shape)
    keep = allowed[starts] & allowed[ends]
    starts, ends = starts[keep], ends[keep]
    return starts, ends, outer[starts, ends], min_null


def _char_span(encoding, s, e, seq_index, align_to_words):
    """Character offsets [a, b) of tokens s..e in the context, widened to words if asked."""
    if align_to_words:
        try:
            a = encoding.word_to_chars(encoding.token_to_word(s), sequence_index=seq_index)[0]
            b = encoding.word_to_chars(encoding.token_to_word(e), sequence_index=seq_index)[1]
            return int(a), int(b)
        except Exception:  # noqa: BLE001 - tokenizers without word ids fall back to offsets
            pass
    return int(encoding.offsets[s][0]), int(encoding.offsets[e][1])
