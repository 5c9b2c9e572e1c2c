"""DESIGN §7 strictness in one place: digits, line breaks, base64 and sizes that lenient parsers let through."""

from __future__ import annotations

import base64

import pytest

from actas.core.entries import MAX_ENTRY_SIZE, parse_entry
from actas.core.note import Checkpoint, parse_note
from actas.core.proof import TlogProof
from actas.core.tiles import decode_bundle, encode_bundle, parse_tile_path
from actas.errors import MalformedError

ROOT = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    "size",
    ["\u0661\u0665", "1_5", "+15", "015", "15 ", " 15", "1\u00a05", "\uff11\uff15", "15\u2028", "0x0f", "1e1"],
)
def test_checkpoint_size_must_be_plain_ascii_decimal(size: str) -> None:
    """Unicode digits, underscores, signs, leading zeros and separators are refused."""
    with pytest.raises(MalformedError, match="size"):
        Checkpoint.from_text(f"example.org/e\n{size}\n{ROOT}\n")


@pytest.mark.parametrize("origin", ["a\u2028b", "a\u2029b", "a\u0085b", "a\x7fb", "a\tb"])
def test_checkpoint_lines_hold_no_line_breaks_of_other_parsers(origin: str) -> None:
    """A line must not carry characters that split lines elsewhere (str.splitlines would split on these)."""
    with pytest.raises(MalformedError, match="origin"):
        Checkpoint.from_text(f"{origin}\n15\n{ROOT}\n")


def test_note_split_only_on_newline() -> None:
    """U+2028 inside a note's text is not a line break: the note stays one line and fails as a checkpoint."""
    with pytest.raises(MalformedError):
        parse_note("example.org/e\u202815\u2028root\n\n".encode())


def test_checkpoint_root_must_be_canonical_base64() -> None:
    """Spare bits set in the last base64 character are refused."""
    spare = ROOT[:-2] + chr(ord(ROOT[-2]) + 1) + "="
    assert base64.b64decode(spare) == base64.b64decode(ROOT)  # a lenient decoder accepts it
    with pytest.raises(MalformedError, match="base64"):
        Checkpoint.from_text(f"example.org/e\n15\n{spare}\n")


@pytest.mark.parametrize("index", ["\u0661", "1_0", "+1", "01", "1\u2028"])
def test_proof_index_must_be_plain_ascii_decimal(index: str) -> None:
    """tlog-proof index lines get the same treatment."""
    text = f"c2sp.org/tlog-proof@v1\nindex {index}\n\nexample.org/e\n15\n{ROOT}\n\n— x AAAAAA==\n"
    with pytest.raises(MalformedError):
        TlogProof.parse(text.encode())


@pytest.mark.parametrize("path", ["tile/0/\u0661\u0662\u0663", "tile/0/1_2", "tile/0/x001/2", "tile/0/000.p/1_0"])
def test_tile_paths_with_lenient_digits_are_refused(path: str) -> None:
    """Tile coordinates parse from ASCII digits only."""
    with pytest.raises(MalformedError):
        parse_tile_path(path)


def test_over_long_entries_are_refused() -> None:
    """An entry that cannot be length-prefixed by uint16 is refused both ways."""
    with pytest.raises(MalformedError, match=r"65535|65536|long|large"):
        encode_bundle([b"x" * (MAX_ENTRY_SIZE + 1)])
    with pytest.raises(MalformedError, match="65535"):
        parse_entry(b"{" + b" " * MAX_ENTRY_SIZE + b"}")


def test_bundle_length_prefix_past_the_end_is_refused() -> None:
    """A truncated entry bundle names the offset."""
    with pytest.raises(MalformedError):
        decode_bundle(b"\x00\x05abc")
