"""A driver-side progress bar for a training job, fed by rank 0's MLflow metrics (the workers' own
output stays in the Ray logs)."""

from __future__ import annotations

import threading

from imagintalk.registry import tracking

PROGRESS_POLL_S = 2.0


class TrainingProgress:
    """Polls the run's ``loss`` history in a daemon thread while the job runs; never fails the job."""

    def __init__(self, run_id: str, uri: str, stage: str, max_steps: int):
        self.run_id, self.uri, self.stage, self.max_steps = run_id, uri, stage, max_steps
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> TrainingProgress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=PROGRESS_POLL_S * 2)

    def _poll(self) -> None:
        from tqdm import tqdm

        c = tracking.client(self.uri)
        with tqdm(total=self.max_steps, desc=f"train {self.stage}", unit="step") as bar:
            while not self.stop.wait(PROGRESS_POLL_S):
                try:
                    history = c.get_metric_history(self.run_id, "loss")
                except Exception:  # a busy SQLite file: try again next tick
                    continue
                if history:
                    last = max(history, key=lambda m: (m.step, m.timestamp))
                    bar.n = last.step
                    bar.set_postfix(loss=f"{last.value:.4g}")
                    bar.refresh()
