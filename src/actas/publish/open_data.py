"""Open-data downloads: every logged acta of one contest as a CSV file (RFC 4180) and as a Parquet file.

One row per acta entry, in log order; the columns are documented in ``docs/open-data.md`` and by
:func:`csv_columns`. Both files are deterministic (same rows, same bytes) and written atomically. Rows are
consumed in batches of :data:`BATCH_ROWS`, so a million actas never sit in memory as Python objects at once.
This is the only module that imports pyarrow.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa  # type: ignore[import-untyped]  # no stubs; the values are Any here
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from actas.core.definition import CODE_PATTERN, ID_PATTERN, NOT_DOTS
from actas.core.election import Contest
from actas.errors import MalformedError
from actas.storage.files import replacing

__all__ = [
    "BATCH_ROWS",
    "STATUSES",
    "ActaRow",
    "csv_columns",
    "write_actas_csv",
    "write_actas_files",
    "write_actas_parquet",
]

STATUSES = ("counted", "conflict", "rule-error")
BATCH_ROWS = 65_536  # rows per Parquet row group and per CSV write
MAX_COUNT = 2**53 - 1  # every integer of an entry lies within ±(2⁵³−1) (docs/formats.md §3.3)
MAX_INT64 = 2**63 - 1
# First characters that make a spreadsheet read a cell as a formula; "'" too, so the guard can be undone.
FORMULA_START = frozenset("=+-@\t\r'")

_ID = re.compile(NOT_DOTS + ID_PATTERN).fullmatch
_CODE = re.compile(NOT_DOTS + CODE_PATTERN).fullmatch
_DEVICE = re.compile(r"[^+\s]+\+[0-9a-f]{8}\+[0-9A-Za-z+/]+={0,2}").fullmatch  # shape of a verifier key string
_SHA256 = re.compile(r"[0-9a-f]{64}").fullmatch
_NEEDS_QUOTES = re.compile('[,"\r\n]').search
_INTS = frozenset({int})  # exactly int: a bool is not a count
_FIXED = ("leaf", "mesa", "contest", "registered", "null", "blank", "cast", "counted", "status", "findings")
_FIXED_TAIL = ("device", "entry_sha256")


@dataclass(frozen=True, slots=True)
class ActaRow:
    """One logged acta as a row of the open-data files; checked on construction."""

    leaf: int  # log leaf index of the acta entry
    mesa: str
    contest: str
    areas: tuple[str, ...]  # area codes from the root level down to the mesa's area
    registered: int  # as stated on the acta
    tickets: tuple[int, ...]  # per ticket, ballot order
    options: tuple[int, ...]  # per option
    null: int
    blank: int
    counted: bool  # whether this acta is the one counted for its mesa and contest
    status: str  # one of STATUSES
    findings: tuple[str, ...]  # rule ids broken (errors and warnings)
    device: str  # the verifier key string of the device that signed it
    entry_sha256: str  # hex SHA-256 of the exact entry bytes

    def __post_init__(self) -> None:
        # One C-speed pass in the common case (a million rows); the slow pass only runs to name the fault.
        try:
            valid = (
                type(self.leaf) is int
                and 0 <= self.leaf <= MAX_INT64
                and _ID(self.mesa)
                and _ID(self.contest)
                and type(self.areas) is tuple
                and all(map(_CODE, self.areas))
                and _INTS.issuperset(
                    map(type, counts := (self.registered, self.null, self.blank, *self.tickets, *self.options))
                )
                and min(counts) >= -MAX_COUNT
                and max(counts) <= MAX_COUNT
                and type(self.tickets) is tuple
                and type(self.options) is tuple
                and self.counted is (self.status == "counted")
                and self.status in STATUSES
                and type(self.findings) is tuple
                and all(map(_ID, self.findings))
                and _DEVICE(self.device)
                and _SHA256(self.entry_sha256)
            )
        except TypeError:
            valid = False
        if not valid:
            self._explain()

    def _explain(self) -> None:
        """Raise a MalformedError naming the first field at fault."""
        leaf = self.leaf
        if type(leaf) is not int or not 0 <= leaf <= MAX_INT64:
            raise MalformedError(f"acta row: leaf {leaf!r} is not a leaf index (an integer 0 to 2^63-1)")
        where = f"acta row (leaf {leaf})"
        for name in ("mesa", "contest"):
            value = getattr(self, name)
            if type(value) is not str or not _ID(value):
                raise MalformedError(f"{where}: {name} {value!r} does not match {ID_PATTERN}")
        if type(self.areas) is not tuple or not all(type(a) is str and _CODE(a) for a in self.areas):
            raise MalformedError(f"{where}: areas {self.areas!r} is not a tuple of codes matching {CODE_PATTERN}")
        for name in ("registered", "null", "blank"):
            value = getattr(self, name)
            if type(value) is not int or not -MAX_COUNT <= value <= MAX_COUNT:
                raise MalformedError(f"{where}: {name} {value!r} is not an integer within ±(2^53-1)")
        for name in ("tickets", "options"):
            _check_counts(where, name, getattr(self, name))
        if type(self.counted) is not bool:
            raise MalformedError(f"{where}: counted {self.counted!r} is not a boolean")
        if self.status not in STATUSES:
            raise MalformedError(f"{where}: status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.counted != (self.status == "counted"):
            raise MalformedError(f"{where}: counted is {self.counted} but status is {self.status!r}")
        if type(self.findings) is not tuple or not all(type(f) is str and _ID(f) for f in self.findings):
            raise MalformedError(f"{where}: findings {self.findings!r} is not a tuple of rule ids")
        if type(self.device) is not str or not _DEVICE(self.device):
            raise MalformedError(f"{where}: device {self.device!r} is not a verifier key string")
        raise MalformedError(f"{where}: entry_sha256 {self.entry_sha256!r} is not 64 lower-case hex digits")


def _check_counts(where: str, name: str, counts: object) -> None:
    """Raise unless counts is a tuple of integers within ±(2⁵³−1)."""
    if (
        type(counts) is not tuple
        or not all(type(c) is int for c in counts)
        or (counts and not (min(counts) >= -MAX_COUNT and max(counts) <= MAX_COUNT))
    ):
        raise MalformedError(f"{where}: {name} {counts!r} is not a tuple of integers within ±(2^53-1)")


def _level_columns(contest: Contest, levels: Sequence[str]) -> list[str]:
    """Column names of the levels: the level name, prefixed with ``area_`` while it clashes or looks like a formula."""
    taken = {*_FIXED, *_FIXED_TAIL, *(f"option:{o.id}" for o in contest.options)}
    taken.update(f"ticket:{t.id}" for t in contest.tickets)
    names: list[str] = []
    for level in levels:
        name = level
        while name in taken or name[:1] in FORMULA_START:
            name = "area_" + name
        taken.add(name)
        names.append(name)
    return names


# Column descriptions, in English; the site passes its language's (locales/*.json, keys "col_<kind>").
COLUMN_TEXTS: Mapping[str, str] = {
    "leaf": "Leaf index of the acta's entry in the log (0 is the first entry)",
    "mesa": "Mesa id, as written in the acta entry and the election definition",
    "contest": "Contest id: {id} ({name})",
    "level_top": "Code of the {level} (the top level of the geography) the mesa belongs to",
    "level": "Code of the {level} (level {n} of the geography) the mesa belongs to",
    "registered": "Registered voters as stated on the acta (not the definition's figure)",
    "option": "Votes for option {id} ({name}) as stated on the acta",
    "null": "Null (spoilt) ballots",
    "blank": "Blank ballots",
    "cast": "Ballots cast: null + blank + the sum of the option columns (computed, not on the acta)",
    "ticket": "Votes on ballot position {n}, ticket {id} ({name}), counting for option {option}",
    "counted": "true if this acta is the one counted for its mesa and contest, false otherwise",
    "status": "counted; conflict (a later, different acta for a mesa that already has one: not counted); "
    "rule-error (breaks a rule of severity error: not counted)",
    "findings": "Ids of the rules the acta breaks, errors and warnings, joined with ';' (empty: none)",
    "device": "Verifier key string of the device that signed the acta; in the CSV a ' is put before one that "
    "starts with = + - @ or ' (spreadsheet formula guard)",
    "entry_sha256": "SHA-256 of the exact bytes of the log entry, lower-case hex",
}


def _fill(template: str, **values: object) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", str(value))
    return template


def csv_columns(
    contest: Contest, levels: Sequence[str], texts: Mapping[str, str] = COLUMN_TEXTS
) -> list[tuple[str, str]]:
    """The columns of a contest's open-data files, in order, each with a one-line description (in ``texts``)."""
    columns = [
        ("leaf", texts["leaf"]),
        ("mesa", texts["mesa"]),
        ("contest", _fill(texts["contest"], id=contest.id, name=contest.name)),
    ]
    for i, (name, level) in enumerate(zip(_level_columns(contest, levels), levels, strict=True)):
        template = texts["level_top"] if i == 0 else texts["level"]
        columns.append((name, _fill(template, level=level, n=i + 1)))
    columns.append(("registered", texts["registered"]))
    columns.extend((f"option:{o.id}", _fill(texts["option"], id=o.id, name=o.name)) for o in contest.options)
    columns += [("null", texts["null"]), ("blank", texts["blank"]), ("cast", texts["cast"])]
    columns.extend(
        (
            f"ticket:{t.id}",
            _fill(texts["ticket"], n=i + 1, id=t.id, name=t.name, option=contest.options[t.option].id),
        )
        for i, t in enumerate(contest.tickets)
    )
    columns += [(key, texts[key]) for key in ("counted", "status", "findings", "device", "entry_sha256")]
    return columns


def _row_checker(contest: Contest, levels: Sequence[str]) -> Callable[[ActaRow], int]:
    """A check of each row against the file's contest and of log order; it returns the row's ``cast``."""
    n_areas, n_options, n_tickets = len(levels), len(contest.options), len(contest.tickets)
    previous = -1

    def check(row: ActaRow) -> int:
        nonlocal previous
        where = f"acta row (leaf {row.leaf})"
        if row.contest != contest.id:
            raise MalformedError(f"{where}: contest {row.contest!r} is not {contest.id!r}, the contest of this file")
        if len(row.areas) != n_areas:
            raise MalformedError(f"{where}: areas has {len(row.areas)} codes; the geography has {n_areas} levels")
        if len(row.options) != n_options:
            raise MalformedError(
                f"{where}: options has {len(row.options)} counts; contest {contest.id!r} has {n_options} options"
            )
        if len(row.tickets) != n_tickets:
            raise MalformedError(
                f"{where}: tickets has {len(row.tickets)} counts; contest {contest.id!r} has {n_tickets} tickets"
            )
        if row.leaf <= previous:
            raise MalformedError(f"{where}: leaf is not after the previous row's leaf {previous} (log order)")
        previous = row.leaf
        cast = row.null + row.blank + sum(row.options)
        if not -MAX_INT64 <= cast <= MAX_INT64:
            raise MalformedError(f"{where}: cast {cast} is outside the 64-bit integer range")
        return cast

    return check


def _batches(rows: Iterable[ActaRow]) -> Iterator[list[ActaRow]]:
    """Rows in lists of at most BATCH_ROWS (read at call time, so tests can shrink it)."""
    iterator = iter(rows)
    while batch := list(islice(iterator, BATCH_ROWS)):
        yield batch


def _guard(text: str) -> str:
    """Put a ``'`` before free text a spreadsheet would run as a formula (and before a leading ``'``)."""
    return "'" + text if text[:1] in FORMULA_START else text


_Sink = Callable[[list[ActaRow], list[int]], None]  # writes one batch of rows and their casts


def _cell(text: str) -> str:
    """A CSV field as RFC 4180 writes it: quoted, with quotes doubled, when it holds a comma, quote or line break."""
    return '"' + text.replace('"', '""') + '"' if _NEEDS_QUOTES(text) else text


def _csv_sink(handle: BinaryIO, contest: Contest, levels: Sequence[str]) -> _Sink:
    """Write the CSV header; return a writer of row batches."""
    handle.write((",".join(_cell(name) for name, _ in csv_columns(contest, levels)) + "\r\n").encode("utf-8"))

    def write(batch: list[ActaRow], casts: list[int]) -> None:
        # Lines are formatted directly (faster than the csv module): ids, codes, rule ids, status
        # and the hash cannot hold a comma, quote or line break (ActaRow checks them), so only device is quoted.
        lines = [
            f"{row.leaf},{row.mesa},{row.contest},{','.join(row.areas)},{row.registered},"
            f"{','.join(map(str, row.options))},{row.null},{row.blank},{cast},{','.join(map(str, row.tickets))},"
            f"{'true' if row.counted else 'false'},{row.status},{';'.join(row.findings)},"
            f"{_cell(_guard(row.device))},{row.entry_sha256}\r\n"
            for row, cast in zip(batch, casts, strict=True)
        ]
        handle.write("".join(lines).encode("utf-8"))

    return write


def _schema(contest: Contest, levels: Sequence[str]) -> pa.Schema:
    """The Parquet schema: the CSV's columns, typed, non-nullable, each described in its field metadata."""
    strings = {"mesa", "contest", "status", "findings", "device", "entry_sha256", *_level_columns(contest, levels)}
    fields = []
    for name, description in csv_columns(contest, levels):
        kind = pa.string() if name in strings else pa.bool_() if name == "counted" else pa.int64()
        fields.append(pa.field(name, kind, nullable=False, metadata={"description": description}))
    return pa.schema(fields)


def _arrays(batch: list[ActaRow], casts: list[int]) -> list[pa.Array]:
    """The columns of one batch, in schema order."""
    int64, string = pa.int64(), pa.string()

    def column(values: Iterable[object], kind: pa.DataType) -> pa.Array:
        return pa.array(list(values), kind)

    def columns(rows: Iterable[tuple[object, ...]], width: int, kind: pa.DataType) -> list[pa.Array]:
        # Transposed in C: one flat array of the rows' values, then every width-th value from each offset.
        if not width:
            return []
        lists = pa.FixedSizeListArray.from_arrays(column(chain.from_iterable(rows), kind), width)
        return [pc.list_element(lists, j) for j in range(width)]

    first = batch[0]
    return [
        column((r.leaf for r in batch), int64),
        column((r.mesa for r in batch), string),
        column((r.contest for r in batch), string),
        *columns((r.areas for r in batch), len(first.areas), string),
        column((r.registered for r in batch), int64),
        *columns((r.options for r in batch), len(first.options), int64),
        column((r.null for r in batch), int64),
        column((r.blank for r in batch), int64),
        column(casts, int64),
        *columns((r.tickets for r in batch), len(first.tickets), int64),
        column((r.counted for r in batch), pa.bool_()),
        column((r.status for r in batch), string),
        column((";".join(r.findings) for r in batch), string),
        column((r.device for r in batch), string),
        column((r.entry_sha256 for r in batch), string),
    ]


@contextlib.contextmanager
def _parquet_sink(handle: BinaryIO, contest: Contest, levels: Sequence[str]) -> Iterator[_Sink]:
    """A writer of row batches, one row group each; the footer is written when the block ends."""
    schema = _schema(contest, levels)
    # zstd keeps downloads small; pyarrow writes no timestamp, so the bytes depend on the rows (and its version).
    with pq.ParquetWriter(handle, schema, compression="zstd") as writer:

        def write(batch: list[ActaRow], casts: list[int]) -> None:
            writer.write_batch(pa.RecordBatch.from_arrays(_arrays(batch, casts), schema=schema))

        yield write


def _write(
    contest: Contest, levels: Sequence[str], rows: Iterable[ActaRow], csv_path: Path | None, parquet_path: Path | None
) -> int:
    """Check and write rows to the files asked for, in one pass; nothing is replaced unless all succeed."""
    check = _row_checker(contest, levels)
    count = 0
    with contextlib.ExitStack() as stack:
        sinks: list[_Sink] = []
        if csv_path is not None:
            sinks.append(_csv_sink(stack.enter_context(replacing(csv_path)), contest, levels))
        if parquet_path is not None:
            sinks.append(
                stack.enter_context(_parquet_sink(stack.enter_context(replacing(parquet_path)), contest, levels))
            )
        for batch in _batches(rows):
            casts = [check(row) for row in batch]
            for sink in sinks:
                sink(batch, casts)
            count += len(batch)
    return count


def write_actas_csv(path: Path, contest: Contest, levels: Sequence[str], rows: Iterable[ActaRow]) -> int:
    """Write a contest's actas (given in log order) as RFC 4180 CSV, UTF-8, CRLF; return the number of rows."""
    return _write(contest, levels, rows, path, None)


def write_actas_parquet(path: Path, contest: Contest, levels: Sequence[str], rows: Iterable[ActaRow]) -> int:
    """Write a contest's actas (given in log order) as Parquet, one row group per batch; return the row count."""
    return _write(contest, levels, rows, None, path)


def write_actas_files(
    csv_path: Path, parquet_path: Path, contest: Contest, levels: Sequence[str], rows: Iterable[ActaRow]
) -> int:
    """Write both files in one pass over the rows (which may then be a generator); return the row count."""
    return _write(contest, levels, rows, csv_path, parquet_path)
