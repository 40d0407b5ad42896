"""What a person reads after an audit: a rich table of the failures and ``result.json``."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from imagintalk.audits.results import AuditResult

RESULT_NAME = "result.json"
# Clip ids are long and a pipe or CI log is not a terminal: give the table room so ids stay whole.
NON_TERMINAL_WIDTH = 200


def failure_table(result: AuditResult, max_listed: int) -> Table | None:
    """One row per failed expectation, blocking first, with up to ``max_listed`` offending ids."""
    failures = sorted(result.failures, key=lambda o: (o.severity != "blocking", o.suite, o.id))
    if not failures:
        return None
    table = Table(title=f"audit failures: {result.target}", show_lines=True)
    for name in ("expectation", "severity", "observed", f"offending (first {max_listed})"):
        table.add_column(name, overflow="fold")
    for o in failures:
        shown = [str(x) for x in o.offenders[:max_listed]]
        more = len(o.offenders) - len(shown)
        if more > 0:
            shown.append(f"... and {more} more (result.json lists all)")
        sev = "[bold red]blocking[/]" if o.severity == "blocking" else "[yellow]warning[/]"
        observed = o.observed if o.error is None else f"error: {o.error}"
        table.add_row(f"{o.id}\n[dim]{o.description}[/]", sev, observed, "\n".join(shown) or "-")
    return table


def print_failures(result: AuditResult, max_listed: int, console: Console | None = None) -> None:
    console = console or Console()
    if not console.is_terminal:
        console = Console(width=NON_TERMINAL_WIDTH, file=console.file)
    table = failure_table(result, max_listed)
    if table is not None:
        console.print(table)


def write_result_json(result: AuditResult, report_dir: Path) -> Path:
    """``result.json``: verdict, every outcome and every offender (the promote gate reads ``passed``)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / RESULT_NAME
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=1, default=str) + "\n")
    tmp.replace(path)
    return path
