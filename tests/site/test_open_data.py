"""The open-data downloads: every acta of a contest as CSV and Parquet (actas.publish.open_data)."""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actas.core.acta import Acta
from actas.core.definition import Contest, Option, Ticket
from actas.core.entries import ActaEntry, parse_entry
from actas.core.keys import Signer
from actas.errors import MalformedError
from actas.publish import open_data
from actas.publish.open_data import ActaRow, csv_columns, write_actas_csv, write_actas_files, write_actas_parquet
from tests import factories

CONTEST = Contest(
    "presidente",
    "Presidencia de la República",
    (Option("cand-a", 'Ana Pérez, "la Flaca"'), Option("cand-b", "Bruno Ñáñez")),
    (Ticket("p01", "Partido Uno", 0), Ticket("p02", "Partido, Dos", 0), Ticket("p03", "Três", 1)),
)
LEVELS = ("estado", "municipio")
DEVICE = str(factories.device(0).verifier)


def key_string(name: str) -> str:
    """A real verifier key string with the given key name."""
    return str(Signer(name, factories.seed(name)).verifier)


def row(leaf: int = 0, **changes: Any) -> ActaRow:
    """A counted acta row of CONTEST, with fields changed as asked."""
    fields: dict[str, Any] = {
        "leaf": leaf,
        "mesa": f"010101001.{leaf:02d}",
        "contest": "presidente",
        "areas": ("01", "0101"),
        "registered": 500,
        "tickets": (100, 20, 90),
        "options": (120, 90),
        "null": 5,
        "blank": 3,
        "counted": True,
        "status": "counted",
        "findings": (),
        "device": DEVICE,
        "entry_sha256": hashlib.sha256(f"entry {leaf}".encode()).hexdigest(),
    }
    fields.update(changes)
    return ActaRow(**fields)


def sample_rows() -> list[ActaRow]:
    """A counted acta, a conflicting one with a warning, and one signed by a device with an awkward name."""
    return [
        row(3),
        row(7, mesa="010101001.03", counted=False, status="conflict", findings=("turnout-high", "other.rule")),
        row(9, mesa="-9", areas=("-02", "-0201"), device=key_string('=HYPERLINK("x",Señal)')),
    ]


def unguard(cell: str) -> str:
    """Undo the CSV's formula guard on the device column, as docs/open-data.md tells readers to."""
    return cell[1:] if cell.startswith("'") else cell


def rows_from_records(records: list[dict[str, Any]], contest: Contest, levels: Sequence[str]) -> list[ActaRow]:
    """Rebuild rows from column-name → value records (cast checked, then dropped)."""
    area_names = [name for name, _ in csv_columns(contest, levels)][3 : 3 + len(levels)]
    rows = []
    for record in records:
        options = tuple(record[f"option:{o.id}"] for o in contest.options)
        assert record["cast"] == record["null"] + record["blank"] + sum(options)
        rows.append(
            ActaRow(
                leaf=record["leaf"],
                mesa=record["mesa"],
                contest=record["contest"],
                areas=tuple(record[name] for name in area_names),
                registered=record["registered"],
                tickets=tuple(record[f"ticket:{t.id}"] for t in contest.tickets),
                options=options,
                null=record["null"],
                blank=record["blank"],
                counted=record["counted"],
                status=record["status"],
                findings=tuple(record["findings"].split(";")) if record["findings"] else (),
                device=record["device"],
                entry_sha256=record["entry_sha256"],
            )
        )
    return rows


def read_csv(path: Path, contest: Contest, levels: Sequence[str]) -> list[ActaRow]:
    """Read a written CSV back with the csv module, typing the cells as docs/open-data.md says."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        texts = {"mesa", "contest", "status", "findings", "device", "entry_sha256"}
        header = list(reader.fieldnames or ())
        area_names = set(header[3 : 3 + len(levels)])
        records = []
        for cells in reader:
            record: dict[str, Any] = {}
            for name, cell in cells.items():
                if name == "device":
                    record[name] = unguard(cell)
                elif name in texts or name in area_names:
                    record[name] = cell
                elif name == "counted":
                    record[name] = {"true": True, "false": False}[cell]
                else:
                    record[name] = int(cell)
            records.append(record)
    return rows_from_records(records, contest, levels)


def read_parquet(path: Path, contest: Contest, levels: Sequence[str]) -> list[ActaRow]:
    """Read a written Parquet file back with pyarrow."""
    return rows_from_records(pq.read_table(path).to_pylist(), contest, levels)


def test_header_and_values_of_a_small_contest(tmp_path: Path) -> None:
    """The CSV is exactly the documented header and one line per row, CRLF-terminated."""
    path = tmp_path / "actas-presidente.csv"
    assert write_actas_csv(path, CONTEST, LEVELS, sample_rows()[:2]) == 2
    sha3, sha7 = (hashlib.sha256(f"entry {n}".encode()).hexdigest() for n in (3, 7))
    assert path.read_bytes().decode("utf-8") == (
        "leaf,mesa,contest,estado,municipio,registered,option:cand-a,option:cand-b,null,blank,cast,"
        "ticket:p01,ticket:p02,ticket:p03,counted,status,findings,device,entry_sha256\r\n"
        f"3,010101001.03,presidente,01,0101,500,120,90,5,3,218,100,20,90,true,counted,,{DEVICE},{sha3}\r\n"
        f"7,010101001.03,presidente,01,0101,500,120,90,5,3,218,100,20,90,false,conflict,"
        f"turnout-high;other.rule,{DEVICE},{sha7}\r\n"
    )


def test_csv_is_utf8_without_bom_and_quotes_commas_and_quotes(tmp_path: Path) -> None:
    """Accents are UTF-8, no BOM; cells with commas or quotes are quoted with doubled quotes (RFC 4180)."""
    path = tmp_path / "a.csv"
    levels = ("región, zona", 'municipio "m"')
    write_actas_csv(path, CONTEST, levels, [row(1, device=key_string('Señal,"ñ"'))])
    data = path.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == 2
    assert b"\n" not in data.replace(b"\r\n", b"")
    header, line = data.decode("utf-8").split("\r\n")[:2]
    assert header.startswith('leaf,mesa,contest,"región, zona","municipio ""m""",registered,')
    assert ',"Señal,""ñ""+' in line
    assert read_csv(path, CONTEST, levels) == [row(1, device=key_string('Señal,"ñ"'))]


def test_empty_file_has_header_only(tmp_path: Path) -> None:
    """No rows: the CSV is its header, the Parquet file has the schema and no rows."""
    assert write_actas_csv(tmp_path / "a.csv", CONTEST, LEVELS, []) == 0
    assert write_actas_parquet(tmp_path / "a.parquet", CONTEST, LEVELS, iter([])) == 0
    assert (tmp_path / "a.csv").read_bytes().count(b"\r\n") == 1
    table = pq.read_table(tmp_path / "a.parquet")
    assert table.num_rows == 0
    assert table.column_names == [name for name, _ in csv_columns(CONTEST, LEVELS)]


def test_columns_are_documented_and_clashing_levels_are_prefixed() -> None:
    """Every column has a description; a level name equal to another column or formula-like gets area_."""
    levels = ("leaf", "area_leaf", "option:cand-a", "=x", "ticket:p01", "barrio")
    columns = csv_columns(CONTEST, levels)
    names = [name for name, _ in columns]
    assert names[3:9] == ["area_leaf", "area_area_leaf", "area_option:cand-a", "area_=x", "area_ticket:p01", "barrio"]
    assert len(set(names)) == len(names)
    assert all(description for _, description in columns)
    assert "Ana Pérez" in dict(columns)["option:cand-a"]
    assert "cand-a" in dict(columns)["ticket:p02"]


def test_csv_round_trip(tmp_path: Path) -> None:
    """Reading the CSV with the csv module gives back the rows."""
    path = tmp_path / "a.csv"
    assert write_actas_csv(path, CONTEST, LEVELS, sample_rows()) == 3
    assert read_csv(path, CONTEST, LEVELS) == sample_rows()


def test_parquet_round_trip_and_types(tmp_path: Path) -> None:
    """Reading the Parquet file with pyarrow gives back the rows, in typed, described, non-null columns."""
    path = tmp_path / "a.parquet"
    assert write_actas_parquet(path, CONTEST, LEVELS, sample_rows()) == 3
    assert read_parquet(path, CONTEST, LEVELS) == sample_rows()
    schema = pq.read_schema(path)
    types = {field.name: field.type for field in schema}
    assert types["leaf"] == pa.int64()
    assert types["option:cand-b"] == pa.int64()
    assert types["ticket:p03"] == pa.int64()
    assert types["counted"] == pa.bool_()
    assert types["municipio"] == pa.string()
    assert types["device"] == pa.string()
    assert not any(field.nullable for field in schema)
    assert schema.field("cast").metadata[b"description"].startswith(b"Ballots cast")


def test_formula_guard_on_device_only(tmp_path: Path) -> None:
    """A device key name a spreadsheet would run gets a leading ' in the CSV; restricted ids are left as logged."""
    rows = [row(n, device=key_string(name)) for n, name in enumerate(("=cmd", "-1", "@x", "'q", "dev-0"))]
    rows.append(row(9, mesa="-9", areas=("-02", "-0201"), findings=("-rule",)))
    path = tmp_path / "a.csv"
    write_actas_csv(path, CONTEST, LEVELS, rows)
    with path.open(encoding="utf-8", newline="") as handle:
        cells = list(csv.DictReader(handle))
    assert [c["device"].split("+")[0] for c in cells] == ["'=cmd", "'-1", "'@x", "''q", "dev-0", "dev-0000"]
    assert (cells[5]["mesa"], cells[5]["estado"], cells[5]["municipio"], cells[5]["findings"]) == (
        "-9",
        "-02",
        "-0201",
        "-rule",
    )
    write_actas_parquet(tmp_path / "a.parquet", CONTEST, LEVELS, rows)
    assert pq.read_table(tmp_path / "a.parquet").column("device").to_pylist()[0] == key_string("=cmd")


def test_rewrite_is_byte_identical(tmp_path: Path) -> None:
    """Same rows, same bytes: twice, elsewhere, and through the one-pass writer of both files."""
    first, second = tmp_path / "1", tmp_path / "2"
    for directory in (first, second):
        write_actas_csv(directory / "a.csv", CONTEST, LEVELS, sample_rows())
        write_actas_parquet(directory / "a.parquet", CONTEST, LEVELS, sample_rows())
    both = tmp_path / "both"
    assert write_actas_files(both / "a.csv", both / "a.parquet", CONTEST, LEVELS, iter(sample_rows())) == 3
    for name in ("a.csv", "a.parquet"):
        assert (first / name).read_bytes() == (second / name).read_bytes() == (both / name).read_bytes()
    write_actas_parquet(second / "a.parquet", CONTEST, LEVELS, sample_rows()[:2])
    assert (first / "a.parquet").read_bytes() != (second / "a.parquet").read_bytes()


def test_files_are_world_readable_and_no_temporary_file_remains(tmp_path: Path) -> None:
    """The written files are published as they are: mode 644, nothing else left in the directory."""
    write_actas_files(tmp_path / "a.csv", tmp_path / "a.parquet", CONTEST, LEVELS, sample_rows())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.parquet"]
    assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o644}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tickets": (1, 2)}, "tickets has 2 counts; contest 'presidente' has 3 tickets"),
        ({"tickets": (1, 2, 3, 4)}, "tickets has 4 counts"),
        ({"options": (1, 2, 3)}, "options has 3 counts; contest 'presidente' has 2 options"),
        ({"areas": ("01",)}, "areas has 1 codes; the geography has 2 levels"),
        ({"contest": "senado"}, "contest 'senado' is not 'presidente'"),
    ],
)
def test_rows_that_do_not_fit_the_contest_raise_naming_leaf_and_field(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    """A row of the wrong shape stops both writers; the leaf and field are named and old files stay whole."""
    csv_path, parquet_path = tmp_path / "a.csv", tmp_path / "a.parquet"
    write_actas_files(csv_path, parquet_path, CONTEST, LEVELS, sample_rows())
    before = csv_path.read_bytes(), parquet_path.read_bytes()
    rows = [row(1), row(42, **changes), row(50)]
    for write in (write_actas_csv, write_actas_parquet):
        with pytest.raises(MalformedError, match=r"acta row \(leaf 42\): ") as caught:
            write(csv_path if write is write_actas_csv else parquet_path, CONTEST, LEVELS, rows)
        assert field in str(caught.value)
    assert (csv_path.read_bytes(), parquet_path.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.parquet"]


def test_failure_after_a_full_batch_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad row in a later batch, after earlier batches were written out, still replaces nothing."""
    monkeypatch.setattr(open_data, "BATCH_ROWS", 2)
    rows = [row(n) for n in range(5)] + [row(5, options=(1,))]
    with pytest.raises(MalformedError, match=r"leaf 5\): options"):
        write_actas_files(tmp_path / "a.csv", tmp_path / "a.parquet", CONTEST, LEVELS, iter(rows))
    assert list(tmp_path.iterdir()) == []


def test_rows_must_come_in_log_order(tmp_path: Path) -> None:
    """Leaves strictly increase: a repeated or earlier leaf is a caller's error, named."""
    with pytest.raises(MalformedError, match=r"leaf 3\): leaf is not after the previous row's leaf 7"):
        write_actas_csv(tmp_path / "a.csv", CONTEST, LEVELS, [row(7), row(3)])
    with pytest.raises(MalformedError, match=r"leaf 7\): leaf is not after"):
        write_actas_parquet(tmp_path / "a.parquet", CONTEST, LEVELS, [row(7), row(7)])


def test_cast_beyond_64_bits_is_refused(tmp_path: Path) -> None:
    """A (rule-breaking) acta whose cast does not fit an int64 is named rather than overflowing."""
    big = (2**53 - 1,) * 1100
    contest = Contest("c", "C", tuple(Option(f"o{i}", "O") for i in range(1100)), (Ticket("t", "T", 0),))
    bad = row(4, contest="c", options=big, tickets=(1,), counted=False, status="rule-error")
    with pytest.raises(MalformedError, match=r"leaf 4\): cast .* outside the 64-bit"):
        write_actas_parquet(tmp_path / "a.parquet", contest, LEVELS, [bad])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"leaf": -1}, "leaf -1"),
        ({"leaf": True}, "leaf True"),
        ({"mesa": "a b"}, "mesa 'a b'"),
        ({"mesa": ".."}, "mesa '..'"),
        ({"contest": ""}, "contest ''"),
        ({"areas": ["01", "0101"]}, "areas"),
        ({"areas": ("01", "x" * 33)}, "areas"),
        ({"registered": "500"}, "registered '500'"),
        ({"null": 2**53}, "null"),
        ({"blank": 1.0}, "blank 1.0"),
        ({"tickets": (1, True, 3)}, "tickets"),
        ({"options": [120, 90]}, "options"),
        ({"options": (-(2**53), 90)}, "options"),
        ({"counted": 1}, "counted 1"),
        ({"status": "duplicate", "counted": False}, "status 'duplicate'"),
        ({"status": "conflict"}, "counted is True but status is 'conflict'"),
        ({"counted": False}, "counted is False but status is 'counted'"),
        ({"findings": ("a;b",)}, "findings"),
        ({"findings": "turnout-high"}, "findings"),
        ({"device": "dev 0+51847af4+AX1o"}, "device"),
        ({"device": "dev-0000"}, "device"),
        ({"entry_sha256": "AB" * 32}, "entry_sha256"),
        ({"entry_sha256": "ab" * 31}, "entry_sha256"),
    ],
)
def test_invalid_rows_are_refused_on_construction(changes: dict[str, Any], field: str) -> None:
    """An ActaRow is valid by construction; the error names the leaf and the field."""
    with pytest.raises(MalformedError) as caught:
        row(**({"leaf": 12} | changes))
    assert field in str(caught.value)
    if "leaf" not in changes:
        assert str(caught.value).startswith("acta row (leaf 12): ")


def test_batches_become_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows are taken from the iterable in batches, one Parquet row group each; the CSV is unaffected."""
    rows = [row(n) for n in range(10)]
    write_actas_csv(tmp_path / "whole.csv", CONTEST, LEVELS, rows)
    monkeypatch.setattr(open_data, "BATCH_ROWS", 3)
    assert write_actas_files(tmp_path / "a.csv", tmp_path / "a.parquet", CONTEST, LEVELS, iter(rows)) == 10
    assert pq.ParquetFile(tmp_path / "a.parquet").num_row_groups == 4
    assert read_parquet(tmp_path / "a.parquet", CONTEST, LEVELS) == rows
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


def acta_of(data: bytes) -> Acta:
    """The acta of an acta entry's bytes."""
    entry = parse_entry(data).entry
    assert isinstance(entry, ActaEntry)
    return entry.acta


def row_of_entry(leaf: int, data: bytes, status: str) -> ActaRow:
    """The row of a logged acta entry of the test election, as the site writer makes it."""
    acta = acta_of(data)
    centre = acta.mesa.split(".")[0]
    return ActaRow(
        leaf=leaf,
        mesa=acta.mesa,
        contest=acta.contest,
        areas=(centre[:2], centre[:4], centre[:6], centre),
        registered=acta.registered,
        tickets=acta.tickets,
        options=acta.options,
        null=acta.null,
        blank=acta.blank,
        counted=status == "counted",
        status=status,
        findings=(),
        device=acta.device,
        entry_sha256=hashlib.sha256(data).hexdigest(),
    )


DOCS = Path(__file__).resolve().parents[2] / "docs" / "open-data.md"


def test_rows_lead_back_to_their_entries_as_documented(tmp_path: Path) -> None:
    """docs/open-data.md shows real output (the worked example's leaves 9, 10 and 16), and each row read back
    finds its entry by SHA-256 with the same numbers and device."""
    election = factories.small_election()
    entries = {
        9: factories.signed_acta(election, 0),
        10: factories.signed_acta(election, 1),
        16: factories.signed_acta(election, 1, tickets=(90, 20, 100, 30)),
    }
    rows = [row_of_entry(leaf, data, "conflict" if leaf == 16 else "counted") for leaf, data in entries.items()]
    path = tmp_path / "actas-presidente.csv"
    write_actas_csv(path, election.contests[0], election.levels, rows)
    text = DOCS.read_text(encoding="utf-8")
    for line in path.read_bytes().decode("utf-8").split("\r\n")[:-1]:
        assert f"\n{line}\n" in text
    fixed = ("leaf", "mesa", "contest", "registered", "null", "blank", "cast", "counted", "status", "findings")
    for name in (*fixed, "device", "entry_sha256"):
        assert f"| `{name}` |" in text
    by_hash = {hashlib.sha256(data).hexdigest(): data for data in entries.values()}
    for got in read_csv(path, election.contests[0], election.levels):
        acta = acta_of(by_hash[got.entry_sha256])
        assert (got.mesa, got.registered, got.tickets, got.options, got.null, got.blank, got.device) == (
            acta.mesa,
            acta.registered,
            acta.tickets,
            acta.options,
            acta.null,
            acta.blank,
            acta.device,
        )


_IDS = st.text("0123456789abcXYZ._-", min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
_COUNT = st.integers(-(2**53) + 1, 2**53 - 1)
_KEY_NAME = st.text(
    st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs"), blacklist_characters="+"), min_size=1
)


@st.composite
def contests_and_rows(draw: st.DrawFn) -> tuple[Contest, tuple[str, ...], list[ActaRow]]:
    """A random contest shape, geography depth and rows for it (ids, counts and device names at the edges)."""
    option_ids = draw(st.lists(_IDS, min_size=1, max_size=3, unique=True))
    ticket_options = draw(st.lists(st.integers(0, len(option_ids) - 1), min_size=1, max_size=4))
    contest = Contest(
        draw(_IDS),
        "C",
        tuple(Option(o, f"Opción {o}, «x»") for o in option_ids),
        tuple(Ticket(f"t{i}", "T", o) for i, o in enumerate(ticket_options)),
    )
    levels = tuple(draw(st.lists(st.sampled_from(["estado", "leaf", "=x", "cast", "zona"]), min_size=1, unique=True)))
    leaves = sorted(draw(st.sets(st.integers(0, 2**63 - 1), max_size=6)))
    rows = []
    for leaf in leaves:
        status = draw(st.sampled_from(open_data.STATUSES))
        rows.append(
            ActaRow(
                leaf=leaf,
                mesa=draw(_IDS),
                contest=contest.id,
                areas=tuple(draw(st.lists(_IDS, min_size=len(levels), max_size=len(levels)))),
                registered=draw(_COUNT),
                tickets=tuple(draw(st.lists(_COUNT, min_size=len(ticket_options), max_size=len(ticket_options)))),
                options=tuple(draw(st.lists(_COUNT, min_size=len(option_ids), max_size=len(option_ids)))),
                null=draw(_COUNT),
                blank=draw(_COUNT),
                counted=status == "counted",
                status=status,
                findings=tuple(draw(st.lists(_IDS, max_size=3))),
                device=f"{draw(_KEY_NAME)}+{draw(st.text('0123456789abcdef', min_size=8, max_size=8))}+AQ+/Zz==",
                entry_sha256=draw(st.binary(min_size=32, max_size=32)).hex(),
            )
        )
    return contest, levels, rows


@settings(max_examples=60, deadline=None)
@given(contests_and_rows())
def test_random_rows_round_trip(case: tuple[Contest, tuple[str, ...], list[ActaRow]]) -> None:
    """Any valid rows come back unchanged from both files, and rewriting gives the same bytes."""
    contest, levels, rows = case
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        assert write_actas_files(directory / "a.csv", directory / "a.parquet", contest, levels, rows) == len(rows)
        assert read_csv(directory / "a.csv", contest, levels) == rows
        assert read_parquet(directory / "a.parquet", contest, levels) == rows
        csv_bytes, parquet_bytes = (directory / "a.csv").read_bytes(), (directory / "a.parquet").read_bytes()
        write_actas_files(directory / "a.csv", directory / "a.parquet", contest, levels, iter(rows))
        assert (directory / "a.csv").read_bytes() == csv_bytes
        assert (directory / "a.parquet").read_bytes() == parquet_bytes
    header = next(csv.reader(io.StringIO(csv_bytes.decode("utf-8"))))
    assert header == [name for name, _ in csv_columns(contest, levels)]
    assert not any(cell[:1] in open_data.FORMULA_START for cell in header)


def simulated_rows(count: int) -> Iterator[ActaRow]:
    """Rows shaped like the 38-ticket Venezuelan presidential contest, built lazily."""
    for leaf in range(count):
        tickets = tuple((leaf * 7 + t) % 50 for t in range(38))
        options = (sum(tickets[:13]), sum(tickets[13:33]), sum(tickets[33:]))
        areas = (f"{leaf % 24:02d}", f"{leaf % 335:04d}", f"{leaf % 1100:06d}", f"{leaf // 30:09d}")
        yield row(leaf, mesa=f"{leaf // 3:09d}.{leaf % 3 + 1:02d}", areas=areas, tickets=tickets, options=options)


@pytest.mark.slow
def test_100k_rows_take_seconds(tmp_path: Path) -> None:
    """Scale: 100,000 actas of a 38-ticket contest checked and written to both files in one pass."""
    contest = Contest(
        "presidente",
        "Presidente",
        (Option("a", "A"), Option("b", "B"), Option("c", "C")),
        tuple(Ticket(f"t{i:02d}", "T", 0 if i < 13 else 1 if i < 33 else 2) for i in range(38)),
    )
    levels = ("estado", "municipio", "parroquia", "centro")
    rows = list(simulated_rows(100_000))
    wall, cpu = time.perf_counter(), time.process_time()
    assert write_actas_files(tmp_path / "a.csv", tmp_path / "a.parquet", contest, levels, rows) == 100_000
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    print(
        f"\n100k rows, both files in one pass: {wall:.2f} s ({cpu:.2f} s CPU); "
        f"csv {sizes['a.csv'] / 1e6:.1f} MB, parquet {sizes['a.parquet'] / 1e6:.1f} MB"
    )
    assert cpu < 5  # so a million actas take well under a minute (CPU time: shared machines are noisy)
    assert pq.ParquetFile(tmp_path / "a.parquet").metadata.num_rows == 100_000
