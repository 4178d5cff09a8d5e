"""Local chat generation: a causal language model answering a conversation.

:class:`LocalChat` holds one model and its tokenizer: those ``pipeline("text-generation")``
loads and caches (:func:`pybridge.pipeline.text_generator`, :mod:`pybridge.models`), so the
folder is the repo's pinned snapshot, weights are safetensors only, and a chat and a pipeline of
the same model share one load. It formats the messages with the model's chat template
(transformers' ``apply_chat_template`` with ``add_generation_prompt=True``, through
:func:`pybridge.tokenizer.render_chat`) and answers with ``model.generate()``:

- :meth:`LocalChat.reply` returns ``{"text", "prompt_tokens", "completion_tokens",
  "finish_reason"}``;
- :meth:`LocalChat.stream` returns a :class:`ChatStream`, an iterator of text chunks whose
  ``result`` attribute holds that same dict once the iteration has ended.

:func:`pipeline_reply` is R's ``pipeline("text-generation")`` called on messages.

torch and transformers are imported when a model loads, never at import.
"""

from __future__ import annotations

import re
import threading
import uuid
import weakref

import numpy as np

from . import errors, models, pipeline, pipeline_args, structured, tokenizer

DEFAULT_MAX_NEW_TOKENS = 256  # as transformers' text-generation pipeline
_TEMPERATURE = pipeline_args.Number(0)
_TOP_P = pipeline_args.Number(0, 1, open=("low",))
# One lock per loaded model (a LocalChat is made for each call; the model is the cache's).
_LOCKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


class LocalChat:
    """One causal LM and its tokenizer answering conversations.

    ``model`` is a Hub repo id or a local folder; the other arguments are those of
    :func:`pybridge.pipeline.load`. A LocalChat is cheap: the model is the cache's, and one
    generation runs at a time per loaded model, whichever LocalChat runs it (a seeded reply
    then does not depend on other calls).
    """

    def __init__(
        self,
        model,
        revision="main",
        device="cpu",
        allow_pickle=False,
        trust_remote_code=False,
        env=None,
        token=None,
        quiet=True,
    ):
        pipe = pipeline.text_generator(
            model, revision, device, allow_pickle, trust_remote_code, env, token, quiet
        )
        self.name = model
        self.model, self.tokenizer = pipe.model, pipe.tokenizer
        # transformers' pipeline's own defaults, for temperature=None (see replies())
        self._pipeline_defaults = getattr(pipe, "_prepare_generate_kwargs", dict)
        self._lock = _model_lock(self.model)

    def reply(self, messages, **settings) -> dict:
        """The assistant's reply to ``messages``: the first of :meth:`replies`, which takes the
        same settings."""
        return self.replies(messages, **settings)[0]

    def replies(
        self,
        messages,
        max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
        temperature=0.0,
        top_p=1.0,
        seed=None,
        tools=None,
        stop=None,
        logits_processor=None,
        generate_kwargs=None,
        read_tool_calls=False,
    ) -> list:
        """The assistant's replies to ``messages``: one per sequence, several when
        ``generate_kwargs`` has ``num_return_sequences``, generated together by one generate()
        call, as transformers' pipeline does (a seed then gives its replies).

        - ``messages``: a list of dicts with ``role`` and ``content``
          (:func:`pybridge.tokenizer.chat_messages`);
        - ``max_new_tokens``: the most tokens to generate (None: the model's generation config);
        - ``temperature``: 0 is greedy; above 0 samples with it and ``top_p``. None settles
          everything as transformers' text-generation pipeline does: ``generate_kwargs``, then
          the model's generation config, then the pipeline's defaults (up to 256 new tokens,
          sampling at temperature 0.7);
        - ``seed``: seeds torch, numpy and Python (``transformers.set_seed``) right before
          generating: the same seed gives the same sampled reply;
        - ``tools``: tool definitions for the template (:func:`pybridge.tokenizer.chat_tools`);
        - ``stop``: a string or strings that end the reply; the text stops before the first one
          (it is left out, as OpenAI's ``stop`` does);
        - ``logits_processor``: a list of transformers ``LogitsProcessor`` objects;
        - ``generate_kwargs``: other ``generate()`` settings (top_k, repetition_penalty,
          do_sample, ...), checked as pipeline()'s are; they win over the settings above.

        Each reply is ``{"text": str, "prompt_tokens": int, "completion_tokens": int,
        "finish_reason": "stop" | "length"}``. ``text`` is the new tokens decoded without
        special tokens; ``completion_tokens`` counts every generated token, the end-of-turn
        token too; "length" when neither an end-of-turn token nor a stop string ended it.
        With ``tools`` and ``read_tool_calls``, also ``"tool_calls"``: the calls the reply makes
        (``{"id", "name", "arguments"}``, arguments as JSON text), read as transformers serve
        reads them; when there are any, ``text`` is the reply without them and
        ``finish_reason`` "tool_calls".
        """
        job = _Generation(
            self, messages, max_new_tokens, temperature, top_p, seed, tools, stop,
            logits_processor, generate_kwargs,
        )  # fmt: skip
        with self._lock:
            rows = job.generate()
        return [job.result(new, read_tool_calls) for new in rows]

    def stream(
        self,
        messages,
        max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
        temperature=0.0,
        top_p=1.0,
        seed=None,
        tools=None,
        stop=None,
        logits_processor=None,
        generate_kwargs=None,
        read_tool_calls=False,
    ) -> "ChatStream":
        """The reply of :meth:`reply` (same arguments) as a :class:`ChatStream` of text chunks;
        generation starts at once, in a thread. The arguments are checked before it starts.
        With ``tools`` and ``read_tool_calls``, the chunks are the reply's content only: its
        tool calls are read as they are generated, by transformers serve's streaming response
        parser, and end up in ``result``."""
        job = _Generation(
            self, messages, max_new_tokens, temperature, top_p, seed, tools, stop,
            logits_processor, generate_kwargs,
        )  # fmt: skip
        return ChatStream(job, self._lock, read_tool_calls)


def _model_lock(model) -> threading.Lock:
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(model, threading.Lock())


class ChatStream:
    """The text chunks of one reply, generated in a thread (transformers' TextIteratorStreamer).

    Iterating gives non-empty strings whose concatenation is the reply's text (a possible
    beginning of a stop string is held back until it is known not to be one). Once the
    iteration has ended, ``result`` is the dict :meth:`LocalChat.reply` returns; it is None
    before. ``close()`` (also called by ``with`` and when the stream is collected) stops the
    generation at its next token and waits for the thread; ``result`` then holds the reply so
    far with ``finish_reason = "cancelled"`` (unless the generation had already ended). An error
    raised by ``generate()`` is raised by the iteration.
    """

    def __init__(self, job, lock, read_tool_calls=False):
        transformers = models.import_transformers()
        self.result = None
        self._done = False
        self._job, self._lock = job, lock
        self._reads_calls = bool(read_tool_calls and job.tools)
        self._parser = _response_parser(job) if self._reads_calls else None
        skip = self._parser is None or _parser_skips_special(job)
        self._streamer = transformers.TextIteratorStreamer(
            job.tokenizer, skip_prompt=True, skip_special_tokens=skip
        )
        self._cancel, self._outcome = _Cancel(), _Outcome()
        self._seen = self._sent = ""
        # The thread holds no reference to the stream, so that a stream dropped unfinished is
        # collected, and its generation stopped.
        self._thread = threading.Thread(
            target=_generate_in_thread,
            args=(job, lock, self._streamer, self._cancel, self._outcome),
            name="hfbridge-chat",
            daemon=True,
        )
        self._thread.start()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        while not self._done:
            try:
                chunk = next(self._streamer)
            except StopIteration:
                rest = self._finish()
                if rest:
                    return rest
                break
            out = self._take(self._content(chunk))
            if out:
                return out
        raise StopIteration

    def _content(self, chunk: str) -> str:
        """The chunk's content: without the tool calls (and reasoning) the parser reads."""
        if self._parser is None:
            return chunk
        from transformers.cli.serving.utils import ReasoningText, response_events_to_chunks

        items = response_events_to_chunks(self._parser.feed(chunk))
        return "".join(i for i in items if isinstance(i, str) and not isinstance(i, ReasoningText))

    def _take(self, chunk: str) -> str:
        self._seen += chunk
        safe = _before_stop(self._seen, self._job.stop)
        out, self._sent = safe[len(self._sent) :], safe
        return out

    def _finish(self) -> str:
        self._thread.join()
        self._done = True
        if self._outcome.error is not None:
            raise self._outcome.error
        self.result = self._job.result(self._outcome.new, self._reads_calls)
        text = self.result["text"]
        rest = text[len(self._sent) :] if text.startswith(self._sent) else ""
        self._sent = text
        return rest

    def close(self) -> None:
        """Stops the generation (at its next token) and waits for it; safe to call again."""
        if self._done:
            return
        self._cancel.set()
        self._thread.join()
        self._done = True
        if self._outcome.error is None and self._outcome.new is not None:
            self.result = self._job.result(self._outcome.new, self._reads_calls)
            if self._cancel.fired:
                self.result["finish_reason"] = "cancelled"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - nothing to tell at collection
            pass


def _response_parser(job):
    """transformers serve's streaming parser of the model's replies (its response template), or
    None for a model without one (its replies stream as plain text)."""
    from transformers.cli.serving.utils import build_response_parser

    return build_response_parser(job.tokenizer, job.model, job.prompt, tools=job.tools)


def _parser_skips_special(job) -> bool:
    """Whether the streamed text leaves out special tokens, as the reply's text does: unless a
    special token marks a tool call (Gemma 4's <|tool_call>, say), which the parser must see.
    (transformers serve's own streamer keeps every special token whenever it parses.)"""
    field = structured.tool_call_field(job.tokenizer, job.model)
    marks = [re.sub(r"\\(.)", r"\1", v) for v in field.values() if isinstance(v, str)]
    return not any(t in m for t in job.tokenizer.all_special_tokens for m in marks)


class _Outcome:
    """What the generating thread leaves: the new ids, or the error it met."""

    new = None
    error = None


def _generate_in_thread(job, lock, streamer, cancel, outcome) -> None:
    try:
        with lock:
            outcome.new = job.generate(streamer, cancel)[0]  # a streamer takes one sequence
    except BaseException as exc:  # noqa: BLE001 - raised again by the iteration
        outcome.error = exc
        streamer.end()


class _Cancel:
    """A generate() stopping criterion that ends generation once :meth:`set`."""

    def __init__(self):
        self._event = threading.Event()
        self.fired = False

    def set(self):
        self._event.set()

    def criterion(self):
        torch, transformers = models.import_torch(), models.import_transformers()
        cancel = self

        class Cancelled(transformers.StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                stop = cancel._event.is_set()
                cancel.fired = cancel.fired or stop
                return torch.full((input_ids.shape[0],), stop, dtype=torch.bool)

        return Cancelled()


class _Generation:
    """One reply: its prompt ids and generate() settings, checked, and how its new tokens become
    the result."""

    def __init__(
        self, chat, messages, max_new_tokens, temperature, top_p, seed, tools, stop,
        logits_processor, generate_kwargs,
    ):  # fmt: skip
        self.model, self.tokenizer = chat.model, chat.tokenizer
        self.stop = _stop(stop)
        self.seed = _checked(pipeline_args.SEED, seed, "seed")
        self.logits_processor = _processors(logits_processor)
        self.settings = {
            **_length(max_new_tokens),
            **_sampling(temperature, top_p),
            **_generate_settings(generate_kwargs),
        }
        if temperature is None:
            self.settings = chat._pipeline_defaults(self.settings)
        elif self.tokenizer.pad_token_id is not None:
            self.settings.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        messages, self.tools = tokenizer.chat_messages(messages), tokenizer.chat_tools(tools)
        self.prompt = tokenizer.render_chat(
            self.tokenizer, messages, self.tools, True, True, name=chat.name
        )
        self._check_positions(messages)

    def _check_positions(self, messages) -> None:
        """A GPT-2-like model takes a prompt and its new tokens only within its positions
        (generate() would fail with an index error): a conversation past them is refused,
        naming its longest message, as pipeline() refuses a text."""
        limit = pipeline.generation_positions(self.model.config)
        room = int(self.settings.get("max_new_tokens") or 0)
        if limit is None or len(self.prompt) + room <= limit:
            return
        counts = pipeline.token_counts(self.tokenizer, [m.get("content") or "" for m in messages])
        longest = max(range(len(counts)), key=counts.__getitem__)
        subject = (
            f"the conversation ({len(self.prompt)} tokens in its chat template, and "
            f"max_new_tokens = {room}; its longest message is message {longest + 1}, "
            f"{messages[longest]['role']}, of {counts[longest]} tokens)"
        )
        advice = (
            "Ask for fewer new tokens (max_tokens in a chat, max_new_tokens in a pipeline), or "
            "shorten the conversation."
        )
        raise pipeline.too_long(
            "chat", subject, limit, room, advice, argument="messages", position=longest + 1
        )

    def generate(self, streamer=None, cancel=None) -> list:
        """The new token ids of each sequence (generate() with the prompt, settings and seed):
        one, unless num_return_sequences asks for more."""
        torch, transformers = models.import_torch(), models.import_transformers()
        kwargs = dict(self.settings)
        if self.stop:
            kwargs.update(stop_strings=self.stop, tokenizer=self.tokenizer)
        if self.logits_processor:
            kwargs["logits_processor"] = transformers.LogitsProcessorList(self.logits_processor)
        if cancel is not None:
            kwargs["stopping_criteria"] = transformers.StoppingCriteriaList([cancel.criterion()])
        if streamer is not None:
            kwargs["streamer"] = streamer
        models.check_attention_memory(
            self.model.config,
            len(self.prompt) + int(self.settings.get("max_new_tokens") or 0),
            f"A prompt of {len(self.prompt)} tokens",
            "Shorten the conversation or the message.",
        )
        ids = torch.tensor([self.prompt], dtype=torch.long, device=self.model.device)
        if self.seed is not None:
            transformers.set_seed(self.seed)
        try:
            # inference_mode, not generate()'s own no_grad: 15-20% faster per token on a small
            # model (no version counters). It is per thread, so a streamed reply sets it too.
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs
                )
        except ValueError as exc:  # generate()'s way to refuse settings that do not fit
            raise errors.InvalidArgumentError(f"generate() refused: {exc}") from exc
        rows = [row[len(self.prompt) :].tolist() for row in out]
        return rows if len(rows) == 1 else [self._unpadded(new) for new in rows]

    def _unpadded(self, new: list) -> list:
        """One of several sequences without the padding generate() puts after its end, once it
        ends before the others: up to its first end-of-turn token, without trailing pad tokens
        (after a stop string)."""
        eos = self._eos()
        end = next((i + 1 for i, t in enumerate(new) if t in eos), len(new))
        new = new[:end]
        pad = self.settings.get("pad_token_id", self.tokenizer.pad_token_id)
        while new and pad is not None and new[-1] == pad and pad not in eos:
            new.pop()
        return new

    def result(self, new: list, read_tool_calls=False) -> dict:
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        reading = read_tool_calls and self.tools
        parsed = self._tool_calls(new, text) if reading else None
        if parsed:
            content, calls = parsed
            return {**self._counts(new), "text": content, "finish_reason": "tool_calls",
                    "tool_calls": calls}  # fmt: skip
        kept = _before_stop(text, self.stop, hold=False)
        if len(kept) < len(text):
            finish = "stop"
        else:
            finish = "stop" if new and new[-1] in self._eos() else "length"
        out = {**self._counts(new), "text": kept, "finish_reason": finish}
        return {**out, "tool_calls": []} if reading else out

    def _counts(self, new: list) -> dict:
        return {"prompt_tokens": len(self.prompt), "completion_tokens": len(new)}

    def _tool_calls(self, new: list, text: str):
        """(content, calls) when the reply calls tools, read back by transformers serve's own
        response parser (the model's response template) as hfbridge's server reads them; else
        None. A call the parser cannot read (cut short by max_new_tokens, say) stays text."""
        from transformers.cli.serving.utils import parse_assistant_message

        try:
            content, _, calls = parse_assistant_message(
                self.tokenizer, self.model, new, self.prompt, text, tools=self.tools
            )
        except ValueError:
            return None
        if not calls:
            return None
        calls = [
            {"id": f"call_{uuid.uuid4().hex[:24]}", "name": c.name, "arguments": c.arguments}
            for c in calls
        ]
        return content or "", calls

    def _eos(self) -> set:
        found = set()
        for ids in (
            self.settings.get("eos_token_id"),
            self.model.generation_config.eos_token_id,
            self.tokenizer.eos_token_id,
        ):
            found |= set(ids if isinstance(ids, (list, tuple)) else [ids])
        return found - {None}


# ---------------------------------------------------------------------------------------------
# Settings


def _checked(spec, value, name):
    if value is None:
        return None
    try:
        return spec(value)
    except pipeline_args.Bad:
        raise pipeline_args.refusal("chat", name, value, spec.describe) from None


def _length(max_new_tokens) -> dict:
    value = _checked(pipeline_args.COUNT, max_new_tokens, "max_new_tokens")
    return {} if value is None else {"max_new_tokens": value}


def _sampling(temperature, top_p) -> dict:
    """temperature 0 is greedy; above, sampling; None leaves it to the pipeline's rules."""
    temperature = _checked(_TEMPERATURE, temperature, "temperature")
    top_p = _checked(_TOP_P, top_p, "top_p")
    if temperature is None:
        return {} if top_p is None else {"top_p": top_p}
    if temperature == 0:
        return {"do_sample": False}
    return {"do_sample": True, "temperature": temperature, "top_p": 1.0 if top_p is None else top_p}


def _generate_settings(generate_kwargs) -> dict:
    out = {}
    for name, value in dict(generate_kwargs or {}).items():
        spec = pipeline_args.GENERATE.get(name)
        if spec is None:
            raise errors.InvalidArgumentError(
                f"chat: '{name}' is not a generate() setting. The settings: "
                f"{', '.join(sorted(pipeline_args.GENERATE))}.",
                argument=name,
            )
        out[name] = _checked(spec, value, name)
    return out


def _stop(stop) -> list:
    """Stop strings as a list (a string is one)."""
    if stop is None:
        return []
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, (list, tuple)) or not all(isinstance(s, str) and s for s in items):
        raise pipeline_args.refusal("chat", "stop", stop, "a non-empty string or a vector of them")
    return list(items)


def _processors(logits_processor) -> list:
    if logits_processor is None:
        return []
    items = list(logits_processor) if isinstance(logits_processor, (list, tuple)) else None
    if items is None or not all(callable(p) for p in items):
        raise errors.InvalidArgumentError(
            "logits_processor must be a list of transformers LogitsProcessor objects.",
            argument="logits_processor",
        )
    return items


def _before_stop(text: str, stops, hold=True) -> str:
    """``text`` up to its first stop string; with ``hold``, also without an ending that could be
    the beginning of one (a stream cannot tell yet)."""
    if not stops:
        return text
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    if cuts:
        return text[: min(cuts)]
    if hold:
        for k in range(min(len(text), max(map(len, stops)) - 1), 0, -1):
            if any(s.startswith(text[-k:]) for s in stops):
                return text[:-k]
    return text


# ---------------------------------------------------------------------------------------------
# pipeline("text-generation") on messages


def pipeline_reply(
    task,
    messages,
    model=None,
    revision="main",
    device="cpu",
    args=None,
    allow_pickle=False,
    trust_remote_code=False,
    env=None,
    token=None,
) -> dict:
    """The reply to one conversation as one row of columns (a row per sequence with
    ``num_return_sequences``): ``generated_text``, ``finish_reason``, ``prompt_tokens`` and
    ``completion_tokens`` (int32).

    ``args`` are the text-generation task's, checked against :data:`pipeline_args.CHAT`, and
    settled as transformers' text-generation pipeline settles them: the call's, then the model's
    generation config, then the pipeline's defaults (up to 256 new tokens, sampling at
    temperature 0.7; ``do_sample = FALSE`` is greedy). ``seed`` makes sampling reproducible;
    ``stop_sequence`` ends the reply (left out of the text); ``tools`` reach the template.
    ``return_full_text`` may only be FALSE: the reply is the new message.
    """
    name = pipeline.canonical(task)
    if name != "text-generation":
        raise errors.UnsupportedError(
            f"Only text-generation takes messages (a conversation); {task} takes texts.",
            task=task,
        )
    args = pipeline_args.check(task, name, dict(args or {}), pipeline_args.CHAT)
    args.pop("batch_size", None)
    if args.pop("return_full_text", False):
        raise pipeline_args.refusal(
            task,
            "return_full_text",
            True,
            "FALSE for a conversation: the reply is the new message (transformers' "
            "return_full_text = FALSE); the conversation is what you gave, to which you can "
            "add it",
        )
    chat = LocalChat(
        model or pipeline.default_model(name),
        revision, device, allow_pickle, trust_remote_code, env, token,
    )  # fmt: skip
    outs = chat.replies(
        messages,
        max_new_tokens=args.pop("max_new_tokens", None),
        temperature=None,
        top_p=None,
        seed=args.pop("seed", None),
        tools=args.pop("tools", None),
        stop=args.pop("stop_sequence", None),
        generate_kwargs=args,
    )
    counts = {
        k: np.asarray([o[k] for o in outs], dtype=np.int32)
        for k in ("prompt_tokens", "completion_tokens")
    }
    return {
        "generated_text": [o["text"] for o in outs],
        "finish_reason": [o["finish_reason"] for o in outs],
        **counts,
    }
