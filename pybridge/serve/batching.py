"""Concurrent embedding and classification requests, batched together.

Each model has one worker thread. A request puts its texts in the queue and waits; the worker
takes whatever has queued up (whole requests, up to ``max_batch_texts`` texts), runs the model
once on all of them (in its own length-sorted batches), and hands each request its rows. When
that run fails, each request runs again alone, so that one request the model cannot take fails
by itself rather than taking the others down with it. Under
load, eight clients sending 250 texts each are served by nearly the forward passes one client
with 2,000 texts would get. A queue longer than ``max_queue`` texts refuses new work (429)
instead of growing without bound.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from typing import Callable, List


class Overloaded(RuntimeError):
    pass


class Batcher:
    def __init__(self, run: Callable[[List[str]], list], max_texts: int, max_queue: int, name):
        self.run, self.max_texts, self.max_queue = run, max_texts, max_queue
        self.queue: "queue.Queue" = queue.Queue()
        self.waiting = 0  # texts queued and not yet taken
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._work, name=f"batcher-{name}", daemon=True)
        self.thread.start()

    async def submit(self, texts: List[str]) -> list:
        with self.lock:
            if self.waiting + len(texts) > self.max_queue:
                waiting = f"{self.waiting} texts are waiting"
                raise Overloaded(f"{waiting}; the limit is {self.max_queue}.")
            self.waiting += len(texts)
        future: Future = Future()
        self.queue.put((texts, future))
        return await asyncio.wrap_future(future)

    def _take(self):
        first = self.queue.get()
        taken, count = [first], len(first[0])
        while count < self.max_texts:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            taken.append(item)
            count += len(item[0])
        with self.lock:
            self.waiting -= count
        return taken

    def _work(self):
        while True:
            taken = self._take()
            live = [(texts, f) for texts, f in taken if f.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                rows = self.run([t for texts, _ in live for t in texts])
            except Exception as exc:  # noqa: BLE001 - handed to the requests, or found alone
                if len(live) == 1:
                    live[0][1].set_exception(exc)
                else:
                    for texts, f in live:
                        self._run_alone(texts, f)
                continue
            start = 0
            for texts, f in live:
                f.set_result(rows[start : start + len(texts)])
                start += len(texts)

    def _run_alone(self, texts, future) -> None:
        try:
            future.set_result(self.run(texts))
        except Exception as exc:  # noqa: BLE001 - this request's own failure
            future.set_exception(exc)
