"""``actas crosscheck``: every mesa's official acta against the witnesses' paper copies, and a parallel tally."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from actas.cli.output import console, out
from actas.core.crosscheck import AreaComparison, CrosscheckReport, MesaCheck

MAX_FLAGGED_SHOWN = 50
_STYLE = {"conflicting-copies": "red", "mismatch": "red", "official-missing": "yellow", "witness-missing": "yellow"}


def _print_table(table: Table) -> None:
    """Print a table; when piped, at its natural width, so no figure is cut to fit 80 columns."""
    if not out.is_terminal:
        table.width = out.measure(table, options=out.options.update_width(1 << 16)).maximum
    out.print(table)


def _signed(n: int) -> str:
    return f"{n:+,}" if n else "0"


def _explained(check: MesaCheck) -> str:
    """The differences of a mismatch (all of them), else the detail; escaped, as option ids look like markup."""
    if check.differences:
        return escape(
            "official/witness: " + ", ".join(f"{d.field} {d.official}/{d.witness}" for d in check.differences)
        )
    return escape(check.detail)


def _print_counts(report: CrosscheckReport) -> None:
    where = f"at checkpoint size {report.checkpoint.size:,}" if report.checkpoint is not None else ""
    out.print(f"[bold]{escape(report.origin)}[/bold] {where}: {report.entries:,} entries read")
    table = Table(title="mesas per status")
    table.add_column("status")
    table.add_column("mesas", justify="right")
    for status, count in report.counts().items():
        style = _STYLE.get(status, "")
        table.add_row(f"[{style}]{status}[/{style}]" if style and count else status, f"{count:,}")
    _print_table(table)
    if report.excluded:
        out.print(f"[yellow]{len(report.excluded):,} entries excluded[/yellow] (never counted), e.g.:")
        for item in report.excluded[:5]:
            out.print(escape(f"  leaf {item.leaf} ({item.kind}, mesa {item.mesa}): {item.reason}"))


def _print_flagged(report: CrosscheckReport) -> None:
    flagged = report.flagged()
    if not flagged:
        out.print("[green]no mesa flagged[/green]")
        return
    title = f"flagged mesas ({len(flagged):,}" + (
        f", first {MAX_FLAGGED_SHOWN})" if len(flagged) > MAX_FLAGGED_SHOWN else ")"
    )
    table = Table(title=title)
    for name in ("mesa", "contest", "status", "differences or detail"):
        table.add_column(name)
    for check in flagged[:MAX_FLAGGED_SHOWN]:
        style = _STYLE[check.status]
        status = f"[{style}]{check.status}[/{style}]"
        table.add_row(check.mesa, check.contest, status, _explained(check))
    _print_table(table)


def _print_national(row: AreaComparison, options: tuple[str, ...]) -> None:
    table = Table(title=f"parallel tally — {row.contest}, national")
    for name in ("", "official", "witness", "difference (mesas with both)"):
        table.add_column(name, justify="right" if name else "left")
    for option, official, witness, difference in zip(
        options, row.official.votes, row.witness.votes, row.difference.votes, strict=True
    ):
        table.add_row(escape(option), f"{official:,}", f"{witness:,}", _signed(difference))
    table.add_row("null", f"{row.official.null:,}", f"{row.witness.null:,}", _signed(row.difference.null))
    table.add_row("blank", f"{row.official.blank:,}", f"{row.witness.blank:,}", _signed(row.difference.blank))
    table.add_row("mesas", f"{row.official_mesas:,}", f"{row.witness_mesas:,}", f"{row.both_mesas:,} compared")
    _print_table(table)


def _print_top_areas(rows: list[AreaComparison], options: tuple[str, ...]) -> None:
    if not rows:
        return
    table = Table(title=f"parallel tally — {rows[0].contest}, per {rows[0].level}")
    for name in ("area", "mesas", "official", "witness", "both"):
        table.add_column(name, justify="left" if name == "area" else "right")
    for option in options:
        table.add_column(escape(f"Δ {option}"), justify="right")
    table.add_column("Δ null", justify="right")
    for row in rows:
        counts = (row.mesas, row.official_mesas, row.witness_mesas, row.both_mesas)
        deltas = [_signed(d) for d in (*row.difference.votes, row.difference.null)]
        table.add_row(escape(f"{row.code} {row.name}"), *(f"{n:,}" for n in counts), *deltas)
    _print_table(table)


def print_summary(report: CrosscheckReport) -> None:
    """Counts per status, the flagged mesas, and the parallel tally of the nation and the top-level areas."""
    _print_counts(report)
    _print_flagged(report)
    for contest, options in zip(report.contests, report.options, strict=True):
        rows = [row for row in report.areas if row.contest == contest]
        _print_national(rows[0], options)
        top = rows[1].level if len(rows) > 1 else None
        _print_top_areas([row for row in rows[1:] if row.level == top], options)


def csv_text(report: CrosscheckReport) -> str:
    """The CSV report: a header, then one row per mesa and contest."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(report.csv_rows())
    return buffer.getvalue()


@click.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--contest", help="Check this contest only (default: every contest).")
@click.option("--csv", "as_csv", is_flag=True, help="Write the full report as CSV: one row per mesa.")
@click.option("--json", "as_json", is_flag=True, help="Write the full report as JSON.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), help="Write --csv/--json here.")
def crosscheck(data_dir: Path, contest: str | None, as_csv: bool, as_json: bool, out_file: Path | None) -> None:
    """Cross-check every mesa's official acta against the witnesses' paper copies; a parallel tally."""
    if as_csv and as_json:
        raise click.UsageError("choose one of --csv and --json")
    if out_file is not None and not (as_csv or as_json):
        raise click.UsageError("--out needs --csv or --json")
    from actas.audit.crosscheck import crosscheck_data_dir

    report = crosscheck_data_dir(data_dir, contest)
    if not (as_csv or as_json):
        print_summary(report)
        return
    text = csv_text(report) if as_csv else json.dumps(report.to_value(), indent=2, ensure_ascii=False) + "\n"
    if out_file is None:
        click.echo(text, nl=False)
    else:
        out_file.write_text(text, encoding="utf-8", newline="")
        console.print(f"{len(report.checks):,} mesa checks written to {out_file}")


COMMANDS = [crosscheck]
