"""One protocol for work that R drives step by step, so that one R function (``job_run()`` in
rpackage/R/job.R) shows progress, stops cleanly on an interrupt and takes the result, whatever
the work: a pipeline over many inputs, embeddings in batches, a fine-tuning run, a dataset read
chunk by chunk.

A :class:`Job` has a ``total`` and runs in steps; every step returns its state, always of one
shape: ``{"done": bool, "step": int, "total": int}``, to which a job may add its own fields (the
last loss, a chunk of data). ``step`` counts the units done: inputs, batches, training steps or
rows. ``done`` says that no more work will run: all of it ran, or the job was stopped.

R calls the functions at the end of this module, the same for every job: :func:`step` until the
state says done, then :func:`result`; :func:`stop` on an interrupt or an R error; :func:`run`
does it all in one call, for R's quiet path.
"""

from __future__ import annotations

from . import _args, errors


class Job:
    """Work that runs in steps. Subclasses set ``total`` and ``position`` and implement
    :meth:`advance` and :meth:`output`; :meth:`stop`, :attr:`finished` and :meth:`state` may say
    more."""

    # Units of work in all: known from the start, or 0 until known (a Trainer counts its steps
    # once it starts), or -1 when only the end tells (rows of a csv file).
    total = 0
    position = 0  # units done
    stopped = False
    interrupted = False  # a step ended by KeyboardInterrupt (R's interrupt, sent into Python)

    @property
    def finished(self) -> bool:
        """No more work will run: every unit ran, or the job was stopped."""
        return self.stopped or self.position >= self.total

    def state(self) -> dict:
        return {"done": bool(self.finished), "step": int(self.position), "total": int(self.total)}

    def step(self, units=None, seconds=None) -> dict:
        """Run up to ``units`` units, or for up to ``seconds`` (None: no limit); the state."""
        if not self.finished:
            self.advance(units, seconds)
        return self.state()

    def advance(self, units, seconds) -> None:
        """Run some units: the limits that fit the job (counted units, or time on a worker)."""
        raise NotImplementedError

    def stop(self) -> dict:
        """Run no more (an interrupt, an error in R, or enough read); the state."""
        self.stopped = True
        return self.state()

    def close(self) -> None:
        """R's handles call this when they close."""
        self.stop()

    def result(self):
        """The job's result, once all of it has run."""
        if self.stopped or not self.finished:
            raise self.unfinished()
        return self.output()

    def output(self):
        raise NotImplementedError

    def unfinished(self) -> errors.PybridgeError:
        """The error of :meth:`result` before the end."""
        how = "was stopped" if self.stopped else "has not finished"
        return errors.InvalidArgumentError(
            f"The job {how} ({self.position} of {self.total} done): step() it until its state "
            "says done, then take the result.",
            argument="job",
        )


class PipelineJob(Job):
    """A transformers pipeline over ``items``, its outputs taken from the generator ``outputs``
    one unit (one input) at a time into ``results``. The exceptions in ``refused`` are
    transformers' way to refuse arguments that do not fit the model, which only it can tell:
    they become :class:`errors.InvalidArgumentError` naming the task."""

    refused: tuple = (ValueError,)

    def __init__(self, task, items, outputs):
        self.task, self.items, self.outputs = task, items, outputs
        self.results = []

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def position(self) -> int:
        return len(self.results)

    def advance(self, units, seconds) -> None:
        from .tokenizer import library_failures

        left = self.total - self.position
        try:
            with library_failures():
                for _ in range(left if units is None else min(units, left)):
                    self.results.append(next(self.outputs))
        except errors.PybridgeError:
            raise
        except self.refused as exc:
            raise errors.InvalidArgumentError(f"{self.task}: {exc}", task=self.task) from exc

    def stop(self) -> dict:
        self.outputs = iter(())  # lets go of the pipeline's generator and what it holds
        return super().stop()


def step(job: Job, units=None, seconds=None) -> dict:
    """``job.step()``, with R's numbers checked (3 arrives as 3.0). A step ended by an interrupt
    marks the job: reticulate may hand R that interrupt as another error (when R's own pending
    interrupt fires while it converts it), and R then asks the job what happened."""
    units = None if units is None else _args.count(units, "units")
    try:
        return job.step(units, None if seconds is None else float(seconds))
    except KeyboardInterrupt:
        job.interrupted = True
        raise


def stop(job: Job) -> dict:
    return job.stop()


def result(job: Job):
    return job.result()


def run(job: Job):
    """Step the job to the end and return its result. An interrupt stops it (a Trainer then
    saves a checkpoint) before it leaves."""
    try:
        while not job.step()["done"]:
            pass
    except KeyboardInterrupt:
        job.stop()
        raise
    return job.result()
