"""connect_app.indexing.git_log: the streaming parser of ``git log -z`` output."""

from __future__ import annotations

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
