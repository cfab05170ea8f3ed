"""connect_app.indexing.git_log: the streaming parser of ``git log -z`` output."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from connect_app.indexing.git_log import CommitRecord, parse_log


def test_log_parser_handles_any_chunking_and_odd_messages() -> None:
    stream = (
        b"\0"
        + b"a" * 40
        + b"\0\0N\0e@x\0"
        + b"1\0"
        + b"2\0"
        + b"\0"  # root commit, empty message
        + b"\0"
        + b"b" * 40
        + b"\0"
        + b"a" * 40
        + b"\0N\0e@x\0"
        + b"3\0"
        + b"4\0"
        + b"msg\nbody\n\0"
        + b"\ndir/x\0y z\0"
    )
    whole = list(parse_log([stream]))
    assert [(c.sha[0], c.message, c.files) for c in whole] == [("a", "", ()), ("b", "msg\nbody", ("dir/x", "y z"))]
    assert list(parse_log(stream[i : i + 1] for i in range(len(stream)))) == whole
    assert whole[1] == CommitRecord(
        "b" * 40,
        ("a" * 40,),
        "N",
        "e@x",
        datetime.fromtimestamp(3, UTC),
        datetime.fromtimestamp(4, UTC),
        "msg\nbody",
        ("dir/x", "y z"),
    )
    assert whole[1].files_changed == 2


def test_empty_output_is_no_commits() -> None:
    assert list(parse_log([])) == []
    assert list(parse_log([b""])) == []


def _reference_parse(chunks: Iterable[bytes]) -> list[CommitRecord]:
    """The parser as first written (a step per token, each field decoded alone): the fast one
    must give exactly what it gives, for any input and any chunking."""
    out: list[CommitRecord] = []
    header: list[bytes] | None = None
    files: list[bytes] = []
    rest = b""

    def record(h: list[bytes], fs: list[bytes]) -> CommitRecord:
        text = [f.decode("utf-8", "replace") for f in h]
        authored, committed = (datetime.fromtimestamp(int(t or 0), UTC) for t in text[4:6])
        paths = tuple(f.decode("utf-8", "replace") for f in fs if f)
        return CommitRecord(
            text[0], tuple(text[1].split()), text[2], text[3], authored, committed, text[6].rstrip("\n"), paths
        )

    for chunk in chunks:
        tokens = (rest + chunk).split(b"\0")
        rest = tokens.pop()
        for token in tokens:
            if token == b"" and (header is None or len(header) == 7):
                if header is not None:
                    out.append(record(header, files))
                header, files = [], []
            elif header is not None and len(header) < 7:
                header.append(token)
            elif header is not None:
                files.append(token[1:] if not files and token.startswith(b"\n") else token)
    if rest and header is not None:
        files.append(rest[1:] if not files and rest.startswith(b"\n") else rest)
    if header is not None and len(header) == 7:
        out.append(record(header, files))
    return out


def _random_stream(rng: random.Random) -> bytes:
    pieces = [b"\xff\xfe", "é".encode(), "修".encode()[:2], b"\n", b" ", b"x", "😀".encode()]
    out = [rng.choice([b"", b"junk\0", b"\n"])]
    for _ in range(rng.randint(0, 6)):
        text = [b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 4))) for _ in range(3)]
        times = [str(rng.randint(0, 2**31)).encode() for _ in range(2)]
        if rng.random() < 0.3:
            times[1] = times[0]
        parents = b" ".join(b"%040x" % rng.getrandbits(160) for _ in range(rng.randint(0, 2)))
        out.append(b"\0%040x\0%s\0%s\0%s\0%s\0%s\0%s\n\0" % (rng.getrandbits(160), parents, *text[:2], *times, text[2]))
        paths = [
            b"d/" + b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(0, 3))
        ]
        if paths:
            out.append(b"\n" + b"\0".join(paths) + b"\0")
    stream = b"".join(out)
    return stream[: rng.randint(len(stream) - 5, len(stream))] if stream and rng.random() < 0.2 else stream


def test_fast_parser_equals_the_reference_for_any_input_and_chunking() -> None:
    rng = random.Random(4)
    for _ in range(400):
        stream = _random_stream(rng)
        cuts = sorted(rng.sample(range(len(stream) + 1), min(len(stream) + 1, rng.randint(0, 6))))
        chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert _outcome(_fast_parse, chunks) == _outcome(_reference_parse, chunks)
        assert _outcome(_reference_parse, chunks) == _outcome(_reference_parse, [stream])
    for stream in (b"\0\0\0", b"\0a\0\0n\0e\0" + b"1\0", b"\0a\0\0n\0e\x00 7\0 7\0m\0\nf\0\0", b"\0" * 9 + b"\n"):
        assert list(parse_log([stream])) == _reference_parse([stream])


def _fast_parse(chunks: list[bytes]) -> list[CommitRecord]:
    return list(parse_log(chunks))


def _outcome(parse: Callable[[list[bytes]], list[CommitRecord]], chunks: list[bytes]) -> list[CommitRecord] | str:
    """The records, or the error a malformed stream raises (the same one from both parsers)."""
    try:
        return parse(chunks)
    except ValueError as e:
        return f"ValueError: {e}"
