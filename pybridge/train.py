"""Fine-tuning with transformers' ``Trainer``: text classification and causal language modelling,
fully or with LoRA (peft), from plain lists of texts and labels.

The data arrive as lists (texts; labels as strings, with the class order R chose), are tokenized
once with the model's fast tokenizer and held in a small list-backed torch ``Dataset``. That
needs no ``datasets`` (pyarrow, pandas) and writes no Arrow cache: the Trainer only needs
``len()`` and indexing, and its sampler, collator and loss are the same either way (the tests
compare the losses with a plain ``datasets.Dataset`` + ``Trainer`` run).

R drives a run as a job of :mod:`pybridge.jobs`, to show progress and stop cleanly: :func:`start`
checks the arguments (a :class:`Plan`) and :func:`build` loads the model and makes the Trainer;
the :class:`Job` runs ``trainer.train()`` in a worker thread for a while at each step and
returns the step and the last loss; stopping it saves a checkpoint at the end of the current
step; its result saves the model and returns the metrics. The worker only runs while R waits
inside a step (R holds the GIL otherwise), and it is one ``trainer.train()`` call however it is
stepped, so stepping changes no result. :func:`fine_tune` does it all at once.

Output folder: the model's weights as safetensors (or the LoRA adapter's), its config with
``id2label``/``label2id`` and the tokenizer files; no pickles (no ``training_args.bin``).
Checkpoints go to ``<output_dir>/checkpoints`` and are removed once training has finished.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import shutil
import threading
import time
import warnings

import numpy as np

from . import _args, errors, jobs, models

TASKS = ("text-classification", "text-generation")
CHECKPOINTS = "checkpoints"
# TrainingArguments that fine_tune() sets from its own arguments, or that must not be set.
RESERVED = {
    "output_dir": "output_dir",
    "num_train_epochs": "epochs",
    "learning_rate": "learning_rate",
    "per_device_train_batch_size": "batch_size",
    "seed": "seed",
    "resume_from_checkpoint": "resume",
    "push_to_hub": "hub_push_model() after training",
    "hub_token": "hub_push_model() after training",
}
LORA_KEYS = ("r", "alpha", "dropout", "target_modules", "merge")


# ---------------------------------------------------------------------------------------------
# One-call API


def fine_tune(
    model,
    train_texts,
    train_labels=None,
    eval_texts=None,
    eval_labels=None,
    classes=None,
    task="text-classification",
    epochs=3,
    learning_rate=2e-5,
    batch_size=16,
    output_dir=None,
    seed=42,
    lora=None,
    resume=False,
    args=None,
    revision="main",
    env=None,
    token=None,
) -> dict:
    """Train, save and return the result (see :meth:`Job.output`)."""
    job = start(
        model,
        train_texts,
        train_labels,
        eval_texts,
        eval_labels,
        classes,
        task,
        epochs,
        learning_rate,
        batch_size,
        output_dir,
        seed,
        lora,
        resume,
        args,
        revision,
        env,
        token,
    )
    return jobs.run(job)


# ---------------------------------------------------------------------------------------------
# Jobs


def start(
    model,
    train_texts,
    train_labels=None,
    eval_texts=None,
    eval_labels=None,
    classes=None,
    task="text-classification",
    epochs=3,
    learning_rate=2e-5,
    batch_size=16,
    output_dir=None,
    seed=42,
    lora=None,
    resume=False,
    args=None,
    revision="main",
    env=None,
    token=None,
    quiet=True,
) -> "Job":
    """Check the arguments, load the model, tokenize the data and build the Trainer."""
    if task not in TASKS:
        raise errors.UnsupportedError(
            f"task must be one of {', '.join(TASKS)}; got '{task}'.",
            argument="task",
            supported=list(TASKS),
        )
    plan = Plan(
        task,
        _texts(train_texts, "train"),
        _epochs(epochs),
        _args.positive(learning_rate, "learning_rate"),
        _args.count(batch_size, "batch_size"),
        _args.count(seed, "seed", minimum=0),
        _lora(lora),
        bool(resume),
    )
    plan.eval_texts = None if eval_texts is None else _texts(eval_texts, "eval")
    if task == "text-classification":
        plan.set_labels(train_labels, eval_labels, classes)
    plan.output_dir = _output_dir(output_dir, plan.resume)
    plan.args = _training_args(args or {})
    path = models.folder(model, revision, env=env, token=token, quiet=quiet)
    return Job(build(plan, model, path))


# ---------------------------------------------------------------------------------------------
# What to train


class Plan:
    """The checked arguments of one run."""

    def __init__(self, task, texts, epochs, learning_rate, batch_size, seed, lora, resume):
        self.task, self.texts, self.epochs = task, texts, epochs
        self.learning_rate, self.batch_size, self.seed = learning_rate, batch_size, seed
        self.lora, self.resume = lora, resume
        self.labels = self.eval_labels = self.classes = None
        self.eval_texts = self.output_dir = self.args = None

    @property
    def classification(self) -> bool:
        return self.task == "text-classification"

    def set_labels(self, labels, eval_labels, classes):
        """Labels as strings and the class order (R's factor levels or sorted values)."""
        labels = _strings(labels, "label", len(self.texts))
        classes = _strings(classes, "classes") if classes is not None else sorted(set(labels))
        seen = sorted(set(labels))
        if len(seen) < 2:
            raise errors.InvalidArgumentError(
                f"The training labels have a single class ('{seen[0] if seen else ''}'): a "
                "classifier needs at least two.",
                argument="label",
                classes=seen,
            )
        unknown = sorted(set(labels) - set(classes))
        if unknown:
            raise errors.InvalidArgumentError(
                f"Labels {unknown[:5]} are not among the classes.", argument="label"
            )
        if self.eval_texts is not None:
            eval_labels = _strings(eval_labels, "label", len(self.eval_texts))
            unseen = sorted(set(eval_labels) - set(seen))
            if unseen:
                raise errors.InvalidArgumentError(
                    f"The eval set has labels the training set lacks: {', '.join(unseen[:5])}. "
                    "The model cannot learn a class it never sees; drop those rows or add "
                    "training examples.",
                    argument="eval",
                    labels=unseen,
                )
            self.eval_labels = [classes.index(x) for x in eval_labels]
        self.classes = list(classes)
        self.labels = [self.classes.index(x) for x in labels]


MAX_EPOCHS = 10_000  # beyond, a typo (1e308, 2^31) that would train for ever


def _epochs(value) -> float:
    value = _args.positive(value, "epochs")
    if value > MAX_EPOCHS:
        raise errors.InvalidArgumentError(
            f"epochs must be at most {MAX_EPOCHS}, not {value!r}.", argument="epochs"
        )
    return value


def _texts(texts, argument) -> list:
    texts = _args.texts(texts, argument)
    if not texts:
        raise errors.InvalidArgumentError(f"The {argument} set has no rows.", argument=argument)
    return texts


def _strings(values, argument, n=None) -> list:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise errors.InvalidArgumentError(
            f"The {argument} values must be strings, without NA.", argument=argument
        )
    if n is not None and len(values) != n:
        raise errors.InvalidArgumentError(
            f"There are {len(values)} {argument} values for {n} texts.", argument=argument
        )
    return list(values)


def _lora(lora):
    if lora is None or lora is False:
        return None
    if lora is True:
        lora = {}
    if not isinstance(lora, dict) or set(lora) - set(LORA_KEYS):
        extra = sorted(set(lora) - set(LORA_KEYS)) if isinstance(lora, dict) else lora
        raise errors.InvalidArgumentError(
            f"lora takes {', '.join(LORA_KEYS)}; got {extra}.", argument="lora"
        )
    out = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": None, "merge": False}
    out.update(lora)
    out["r"] = _args.count(out["r"], "lora$r")
    out["alpha"] = _args.positive(out["alpha"], "lora$alpha")
    if not isinstance(out["dropout"], (int, float)) or not 0 <= out["dropout"] < 1:
        raise errors.InvalidArgumentError("lora$dropout must be in [0, 1).", argument="lora")
    targets = out["target_modules"]
    if isinstance(targets, str):
        out["target_modules"] = [targets]
    out["merge"] = bool(out["merge"])
    return out


def _output_dir(output_dir, resume) -> str:
    if output_dir is None:
        if resume:
            raise errors.InvalidArgumentError(
                "resume = TRUE continues from the checkpoints in output_dir: give the "
                "output_dir of the interrupted run.",
                argument="output_dir",
            )
        import tempfile

        return tempfile.mkdtemp(prefix="fine-tune-")
    path = os.path.abspath(os.path.expanduser(str(output_dir)))
    if resume and _last_checkpoint(path) is None:
        raise errors.InvalidArgumentError(
            f"resume = TRUE, but '{path}' has no checkpoint to continue from.",
            argument="resume",
            path=path,
        )
    return path


def _last_checkpoint(path):
    """The newest complete checkpoint. transformers writes a checkpoint in place, its
    trainer_state.json last: one without it is a save that a killed process left half done."""
    folder = os.path.join(path, CHECKPOINTS)
    if not os.path.isdir(folder):
        return None
    found = [
        n
        for n in os.listdir(folder)
        if n.startswith("checkpoint-")
        and n.split("-")[-1].isdigit()
        and os.path.isfile(os.path.join(folder, n, "trainer_state.json"))
    ]
    if not found:
        return None
    return os.path.join(folder, max(found, key=lambda n: int(n.split("-")[-1])))


def _training_args(args: dict) -> dict:
    """The user's TrainingArguments fields, checked by name, whole numbers made int."""
    transformers = models.import_transformers()

    fields = {f.name: f for f in dataclasses.fields(transformers.TrainingArguments) if f.init}
    out = {}
    for name, value in args.items():
        if name in RESERVED:
            raise errors.InvalidArgumentError(
                f"'{name}' is set by fine_tune() itself: use {RESERVED[name]} instead.",
                argument=name,
            )
        if name not in fields:
            near = difflib.get_close_matches(name, list(fields), n=3)
            hint = f" Did you mean {', '.join(near)}?" if near else ""
            raise errors.InvalidArgumentError(
                f"'{name}' is not a field of transformers' TrainingArguments.{hint}",
                argument=name,
                suggestions=near,
            )
        kind = str(fields[name].type)
        if (
            isinstance(value, float)
            and value.is_integer()
            and "int" in kind
            and "float" not in kind
        ):
            value = int(value)
        out[name] = value
    return out


# ---------------------------------------------------------------------------------------------
# Data


class Examples:
    """Tokenized examples as a map-style dataset: a dict of equal-length lists."""

    def __init__(self, columns: dict):
        self.columns = columns
        self.n = len(next(iter(columns.values())))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.columns.items()}


def max_length(tokenizer, config) -> int:
    """The longest input the model takes: its tokenizer's and position embeddings' limit."""
    limits = [
        tokenizer.model_max_length,
        getattr(config, "max_position_embeddings", None),
        getattr(config, "n_positions", None),
    ]
    limits = [int(x) for x in limits if x is not None and x < 1e6]
    return min(limits) if limits else 512


def encode(tokenizer, texts, limit, labels=None, append_eos=False) -> Examples:
    if append_eos and tokenizer.eos_token:
        texts = [t + tokenizer.eos_token for t in texts]
    enc = tokenizer(texts, truncation=True, max_length=limit)
    columns = {k: list(v) for k, v in enc.items()}
    if labels is not None:
        columns["labels"] = list(labels)
    return Examples(columns)


def classification_metrics(prediction) -> dict:
    """Accuracy and macro F1 (the mean over classes seen in labels or predictions)."""
    logits = prediction.predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    pred = np.asarray(logits).argmax(-1)
    truth = np.asarray(prediction.label_ids)
    f1 = []
    for c in np.union1d(pred, truth):
        tp = np.sum((pred == c) & (truth == c))
        fp = np.sum((pred == c) & (truth != c))
        fn = np.sum((pred != c) & (truth == c))
        f1.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float(np.mean(pred == truth)), "f1_macro": float(np.mean(f1))}


# ---------------------------------------------------------------------------------------------
# Building: the model and the Trainer


@dataclasses.dataclass
class Built:
    """What one run trains: the tokenizer, the model (with its new head or LoRA) in the Trainer,
    and the parameter counts."""

    plan: Plan
    tokenizer: object
    trainer: object
    trainable: int
    parameters: int


def build(plan: Plan, model_name: str, path: str) -> Built:
    """Load the model and tokenizer from the folder ``path``, tokenize the data and make the
    Trainer."""
    tokenizer, model = _load(plan, model_name, path)
    trainable, parameters = _parameter_counts(model)
    trainer = _trainer(plan, tokenizer, model)
    return Built(plan, tokenizer, trainer, trainable, parameters)


def _load(plan, model_name, path):
    transformers = models.import_transformers()
    transformers.set_seed(plan.seed)  # a new head's initial weights depend on it
    with models.quiet_transformers():
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(path)
            kwargs = {"use_safetensors": models.use_safetensors(path)}
            if plan.classification:
                auto = transformers.AutoModelForSequenceClassification
                kwargs.update(
                    num_labels=len(plan.classes),
                    id2label=dict(enumerate(plan.classes)),
                    label2id={c: i for i, c in enumerate(plan.classes)},
                    ignore_mismatched_sizes=True,
                )
            else:
                auto = transformers.AutoModelForCausalLM
            model = auto.from_pretrained(path, **kwargs)
        except Exception as exc:  # noqa: BLE001 - transformers raises many kinds here
            raise _head_error(exc, model_name, plan.task) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if plan.lora is not None:
        model = _with_lora(model, plan)
    return tokenizer, model


def _trainer(plan, tok, model):
    transformers = models.import_transformers()
    limit = max_length(tok, model.config)
    lm = not plan.classification
    train = encode(tok, plan.texts, limit, plan.labels, append_eos=lm)
    evals = (
        None
        if plan.eval_texts is None
        else encode(tok, plan.eval_texts, limit, plan.eval_labels, append_eos=lm)
    )
    steps = math.ceil(plan.epochs * math.ceil(len(train) / plan.batch_size))
    defaults = dict(
        per_device_eval_batch_size=plan.batch_size,
        logging_strategy="steps",
        logging_steps=max(1, steps // 50),
        eval_strategy="epoch" if evals else "no",
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=models.import_torch().cuda.is_available(),
    )
    args = transformers.TrainingArguments(
        output_dir=os.path.join(plan.output_dir, CHECKPOINTS),
        num_train_epochs=plan.epochs,
        learning_rate=plan.learning_rate,
        per_device_train_batch_size=plan.batch_size,
        seed=plan.seed,
        **{**defaults, **plan.args},
    )
    if lm:
        collator = transformers.DataCollatorForLanguageModeling(tok, mlm=False)
    else:
        collator = transformers.DataCollatorWithPadding(tok)
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evals,
        processing_class=tok,
        data_collator=collator,
        compute_metrics=classification_metrics if plan.classification and evals else None,
    )
    # R shows progress itself; these would print every log line to the console.
    trainer.remove_callback(transformers.PrinterCallback)
    trainer.remove_callback(transformers.ProgressCallback)
    return trainer


# ---------------------------------------------------------------------------------------------
# Running: the job


class Job(jobs.Job):
    """Runs a built Trainer's ``train()`` on a worker thread, in slices of time; its units are
    training steps (``total`` is 0 until the Trainer has counted them). ``stop()`` ends the run
    at the end of the current step, with a checkpoint; the result saves the model."""

    def __init__(self, built: Built):
        self.built, self.plan = built, built.plan
        self.loss = float("nan")
        self.error = None
        self.resumed_from = 0
        self.progress = threading.Condition()
        self.thread = None
        self.ended = False
        built.trainer.add_callback(_Reporter(self))

    @property
    def finished(self) -> bool:
        return self.stopped or self.ended

    def _work(self, threads):
        # OpenMP keeps the thread count per thread: take the caller's (torch.set_num_threads).
        models.import_torch().set_num_threads(threads)
        try:
            resume = _last_checkpoint(self.plan.output_dir) if self.plan.resume else None
            with models.quiet_transformers():
                self.built.trainer.train(resume_from_checkpoint=resume)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of step()
            self.error = exc
        finally:
            with self.progress:
                self.ended = True
                self.progress.notify_all()

    def advance(self, units, seconds) -> None:
        if self.thread is None:
            threads = models.import_torch().get_num_threads()
            self.thread = threading.Thread(
                target=self._work, args=(threads,), name="pybridge-train", daemon=True
            )
            self.thread.start()
        # Return at the deadline, not at each step: while R runs its own code between calls it
        # holds the GIL, and the worker waits.
        deadline = None if seconds is None else time.monotonic() + seconds
        with self.progress:
            while not self.ended:
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    break
                self.progress.wait(wait)
        self._raise_error()

    def stop(self) -> dict:
        self.stopped = True  # the Reporter ends the run at the end of the current step
        if self.thread is not None:
            self.thread.join()
        self._raise_error()
        return self.state()

    def _raise_error(self):
        if self.error is None:
            return
        exc, self.error = self.error, None
        if isinstance(exc, errors.PybridgeError):
            raise exc
        raise errors.PythonError(
            f"Training failed: {type(exc).__name__}: {exc}",
            python_type=type(exc).__name__,
            path=self.plan.output_dir,
        ) from exc

    def state(self) -> dict:
        """With the last logged ``loss`` and the last ``checkpoint`` ("" when none)."""
        return {**super().state(), "loss": float(self.loss), "checkpoint": self._checkpoint()}

    def _checkpoint(self) -> str:
        return _last_checkpoint(self.plan.output_dir) or ""

    def unfinished(self) -> errors.PybridgeError:
        if not self.stopped:
            return super().unfinished()
        return errors.InvalidArgumentError(
            "Training was interrupted; resume it with resume = TRUE.",
            argument="job",
            path=self._checkpoint(),
        )

    def output(self) -> dict:
        """Saves the model; the metrics columns, the folder and the parameter counts."""
        self._raise_error()
        out = self.plan.output_dir
        with models.quiet_transformers():
            self._save(out)
        shutil.rmtree(os.path.join(out, CHECKPOINTS), ignore_errors=True)
        history = self.built.trainer.state.log_history
        return {
            "metrics": metric_columns(history),
            "summary": _summary(history),
            "output_dir": out,
            "task": self.plan.task,
            "classes": list(self.plan.classes or []),
            "trainable": float(self.built.trainable),
            "parameters": float(self.built.parameters),
            "lora": self.plan.lora is not None,
            "merged": bool(self.plan.lora and self.plan.lora["merge"]),
            "resumed_from": int(self.resumed_from),
        }

    def _save(self, out):
        model = self.built.trainer.model
        os.makedirs(out, exist_ok=True)
        if self.plan.lora is not None:
            if self.plan.lora["merge"]:
                model = model.merge_and_unload()
            else:
                # The adapter, then the base model beside it: transformers loads a folder with
                # both as "base + embedded adapter" from that folder, offline and with this
                # config's labels (from the base repo it would take the base's labels).
                model.save_pretrained(out)
                model = model.unload()
        model.save_pretrained(out)
        self.built.tokenizer.save_pretrained(out)


def _parameter_counts(model):
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def _with_lora(model, plan):
    try:
        import peft
    except ImportError as exc:
        raise errors.PythonEnvironmentError(
            "LoRA needs the Python package peft (pinned in pybridge's dependencies); "
            "reinstall pybridge.",
            package="peft",
        ) from exc
    lora = plan.lora
    task_type = peft.TaskType.SEQ_CLS if plan.classification else peft.TaskType.CAUSAL_LM
    config = peft.LoraConfig(
        task_type=task_type,
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=_lora_targets(model, lora["target_modules"]),
    )
    try:
        with warnings.catch_warnings():
            # peft 0.21 asks transformers 5 for a deprecated attribute; nothing for R users.
            warnings.simplefilter("ignore", FutureWarning)
            return peft.get_peft_model(model, config)
    except ValueError as exc:
        raise errors.InvalidArgumentError(
            f"LoRA cannot be applied to this model: {exc}. Name its linear layers in "
            "lora$target_modules.",
            argument="lora",
        ) from exc


def _lora_targets(model, asked):
    """The layers asked for; else peft's default for the architecture; else every linear layer
    of the body (peft has no default for some architectures, DistilBERT among them; the head
    trains whole, as peft does for its own defaults)."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as defaults

    if asked is not None or model.config.model_type in defaults:
        return asked
    torch = models.import_torch()
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name.split(".")[0] not in _HEAD_MODULES
        }
    )


_HEAD_MODULES = ("classifier", "pre_classifier", "score", "lm_head")


def _head_error(exc, model, task):
    head = (
        "a sequence classification head"
        if task == "text-classification"
        else "a causal language-model head"
    )
    return errors.UnsupportedError(
        f"The model '{model}' cannot be given {head} for '{task}' ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else ''}).",
        repo_id=model,
        task=task,
    )


class _Reporter:
    """Tells the job each step's number and loss, and stops with a checkpoint when asked."""

    def __new__(cls, job):
        transformers = models.import_transformers()

        class Reporter(transformers.TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                job.resumed_from = state.global_step
                with job.progress:
                    job.total = state.max_steps
                    job.position = state.global_step

            def on_step_end(self, args, state, control, **kwargs):
                if job.stopped:
                    control.should_save = True
                    control.should_training_stop = True
                with job.progress:
                    job.position = state.global_step
                    job.progress.notify_all()

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    job.loss = float(logs["loss"])

        return Reporter()


# ---------------------------------------------------------------------------------------------
# Metrics


COLUMNS = (
    "epoch",
    "step",
    "loss",
    "grad_norm",
    "learning_rate",
    "eval_loss",
    "eval_accuracy",
    "eval_f1_macro",
)


def metric_columns(history) -> dict:
    """One row per logging step and evaluation; NaN where a row has no value."""
    rows = [h for h in history if "train_runtime" not in h]
    names = [c for c in COLUMNS if c in ("epoch", "step") or any(c in h for h in rows)]
    out = {}
    for name in names:
        key = "step" if name == "step" else name
        values = [h.get(key, math.nan) for h in rows]
        if name == "step":
            out[name] = np.asarray(values, dtype=np.int32)
        else:
            out[name] = np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)
    return out


def _summary(history) -> dict:
    final = next((h for h in reversed(history) if "train_runtime" in h), {})
    return {k: float(v) for k, v in final.items() if isinstance(v, (int, float))}
