"""Human-readable tables for verification reports and results."""

from __future__ import annotations

import json

from rich.table import Table

from actas.cli.output import out
from actas.core.election import Election
from actas.core.verify import STEPS, Report
from actas.publish.results import Results

_MARK = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: "[dim]·[/dim]"}


def print_report(report: Report, brief: bool = False) -> None:
    """Print each numbered step with its verdict, then the failures and conflicts."""
    root = report.root_hash.hex()[:16]
    out.print(f"\n[bold]{report.origin or '?'}[/bold]  tree size {report.size:,}  root {root}…")
    for number, _name, text in STEPS:
        verdict = report.step_ok(number)
        count = report.failure_counts.get(number, 0)
        suffix = f"  [red]{count:,} failure(s)[/red]" if count else ""
        out.print(f" {_MARK[verdict]} {number}. {text}{suffix}")
    for failure in report.failures:
        out.print(f"   [red]step {failure.step}[/red] {failure.where}: {failure.message}")
    if report.conflicts and not brief:
        out.print(f"conflicts ({len(report.conflicts)}):")
        for conflict in report.conflicts:
            out.print(f"   mesa {conflict.mesa} contest {conflict.contest}: leaves {list(conflict.leaves)}")
    elif report.conflicts:
        out.print(f"conflicts: {len(report.conflicts)} mesa(s) with more than one acta")
    out.print("[green]VERIFIED[/green]" if report.ok else "[red]VERIFICATION FAILED[/red]")


def _print_table(table: Table) -> None:
    """Print a table; when piped, at its natural width, so no figure is cut to fit 80 columns."""
    if not out.is_terminal:
        table.width = out.measure(table, options=out.options.update_width(1 << 16)).maximum
    out.print(table)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "-"


def print_national(election: Election, report: Report) -> None:
    """Print national totals per option, turnout and coverage from a verification."""
    mesas = election.mesa_count
    for contest in election.contests:
        row = report.national.get(contest.id)
        if row is None:
            continue
        actas, registered, null, blank, votes = row[0], row[1], row[2], row[3], row[4:]
        valid = sum(votes)
        table = Table(title=f"{election.title} — {contest.name}", show_lines=False)
        table.add_column("option")
        table.add_column("votes", justify="right")
        table.add_column("share", justify="right")
        ranked = sorted(zip(contest.options, votes, strict=True), key=lambda kv: -kv[1])
        for option, count in ranked:
            table.add_row(option.name, f"{count:,}", _pct(count, valid))
        table.add_row("null", f"{null:,}", "")
        table.add_row("blank", f"{blank:,}", "")
        _print_table(table)
        cast = valid + null + blank
        out.print(
            f"turnout {_pct(cast, registered)} of {registered:,} registered in counted mesas; "
            f"coverage {actas:,} of {mesas:,} actas ({_pct(actas, mesas)})"
        )


def print_results(results: Results, level: str | None) -> None:
    """Print national totals and, optionally, every area of one level."""
    cp = results.checkpoint
    out.print(f"{results.election.origin} at checkpoint size {cp.size:,} root {cp.root_hash.hex()[:16]}…")
    for path, data in results.files.items():
        value = json.loads(data)
        if value["level"] != "national" and value["level"] != level:
            continue
        table = Table(title=path)
        table.add_column("area")
        for option in value["options"]:
            table.add_column(option, justify="right")
        table.add_column("null", justify="right")
        table.add_column("blank", justify="right")
        table.add_column("turnout", justify="right")
        table.add_column("actas", justify="right")
        for area in value["areas"]:
            table.add_row(
                area["name"] or "national",
                *(f"{v:,}" for v in area["votes"]),
                f"{area['null']:,}",
                f"{area['blank']:,}",
                _pct(area["cast"], area["registered_counted"]),
                f"{area['actas']:,}/{area['mesas']:,}",
            )
        _print_table(table)
    if level is not None and level not in results.election.levels:
        out.print(f"[yellow]no level {level!r}; levels are {', '.join(results.election.levels)}[/yellow]")
