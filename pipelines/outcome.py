"""The one exit policy of every entry point: the CLI (`imagintalk ...`), DVC's commands
(`python -m pipelines.run STAGE`) and the Dagster assets.

A stage function either raises an :class:`~imagintalk.errors.ImaginTalkError` (bad input: a one-line
error naming the input) or returns a result. Two results stop a pipeline although nothing raised:
an audit whose blocking expectation failed (``passed`` False) and a promotion the gate refused
(``promoted`` False). Each entry point turns :func:`stop_reason` into its own way of failing:
exit status 1 for the CLI and DVC (so ``dvc repro`` stops and records nothing), a failed step
(or a failed blocking asset check) for Dagster.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from imagintalk.errors import ImaginTalkError

EXIT_OK = 0
EXIT_FAILED = 1
DEBUG_ENV = "IMAGINTALK_DEBUG"  # set: an unexpected exception keeps its traceback


def summary_line(result: Any) -> str | None:
    """The one-line summary a stage's result offers (``result.summary_line()``), if any."""
    line = getattr(result, "summary_line", None)
    return line() if callable(line) else None


def stop_reason(result: Any) -> str | None:
    """Why ``result`` must stop the pipeline, or None when the next stage may run."""
    if getattr(result, "passed", True) is False:
        return summary_line(result) or "a blocking audit expectation failed"
    if getattr(result, "promoted", True) is False:
        return summary_line(result) or "the promotion gate refused the model"
    return None


def exit_code(result: Any) -> int:
    return EXIT_FAILED if stop_reason(result) is not None else EXIT_OK


def run_and_report(fn: Callable[..., Any], *args: Any, echo: Callable[[str, bool], None] | None = None,
                   **kwargs: Any) -> tuple[Any, int]:
    """Call a stage function the way a command line does: an ImaginTalkError becomes one line
    ``error: <input>: <reason>`` on stderr; a result prints its summary line. Returns (result or
    None, exit status)."""
    echo = echo or _print
    try:
        result = fn(*args, **kwargs)
    except ImaginTalkError as exc:
        echo(f"error: {exc}", True)
        return None, EXIT_FAILED
    except Exception as exc:  # a bug, not bad input: still one line, the traceback on request
        if os.environ.get(DEBUG_ENV):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        echo(f"error: {getattr(fn, '__name__', 'command')}: unexpected {type(exc).__name__}: {first} "
             f"(a bug; rerun with {DEBUG_ENV}=1 for the traceback and report it)", True)
        return None, EXIT_FAILED
    line = summary_line(result)
    if line:
        echo(line, False)
    return result, exit_code(result)


def _print(text: str, err: bool) -> None:
    print(text, file=sys.stderr if err else sys.stdout)
