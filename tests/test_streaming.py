"""Bounded-memory reports: a Spill reads back what was appended, sorting through files equals
sorted(), and the streamed JSON is byte for byte what json.dumps writes. The limits are made
tiny here, so every path through the files is taken with a few items."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hellocontainer.check import streaming
from hellocontainer.check.streaming import Spill, json_chunks, sorted_stream

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(streaming, "IN_MEMORY", 3)
    monkeypatch.setattr(streaming, "RUN", 4)
    monkeypatch.setattr(streaming, "MAX_RUNS", 2)


@settings(max_examples=150, deadline=None)
@given(items=st.lists(JSON, max_size=30))
def test_a_spill_gives_back_what_was_appended_as_often_as_asked(items):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streaming, "IN_MEMORY", 3)
        spill = Spill()
        spill.extend(items)
        assert list(spill) == items and list(spill) == items
        assert len(spill) == len(items) and bool(spill) == bool(items)


def test_two_readings_of_one_spill_interleave(tiny):
    spill = Spill()
    spill.extend(range(10))
    assert list(zip(spill, spill)) == [(i, i) for i in range(10)]


@settings(max_examples=150, deadline=None)
@given(items=st.lists(st.tuples(st.integers(0, 5), st.integers()), max_size=60))
def test_sorting_through_files_is_sorted_and_stable(items):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streaming, "RUN", 4)
        patch.setattr(streaming, "MAX_RUNS", 2)  # 15 runs: merged in cascades
        records = [list(item) for item in items]
        assert list(sorted_stream(records, key=lambda r: r[0])) == sorted(records, key=lambda r: r[0])


@settings(max_examples=200, deadline=None)
@given(value=JSON)
def test_streamed_json_is_what_json_dumps_writes(value):
    assert "".join(json_chunks(value)) == json.dumps(value, indent=2, sort_keys=True)


def test_a_spill_inside_a_report_streams_as_a_list(tiny):
    files = Spill()
    files.extend({"path": f"/f{i}", "size": i} for i in range(7))
    report = {"layers": [{"files": files}], "empty": Spill()}
    expected = {"layers": [{"files": list(files)}], "empty": []}
    assert "".join(json_chunks(report)) == json.dumps(expected, indent=2, sort_keys=True)


def test_a_spill_keeps_only_its_head_in_memory(tiny):
    """What bounds memory: past IN_MEMORY items, the rest live in the file, not in the list."""
    small, large = Spill(), Spill()
    small.extend(range(3))
    large.extend(range(10))
    assert (len(small._head), small._file) == (3, None)
    assert len(large._head) == 3 and large._file is not None


@pytest.mark.parametrize(("count", "files"), [(3, 0), (4, 1), (8, 2), (9, 4)])
def test_sorting_writes_runs_only_past_one_and_merges_only_past_max_runs(tiny, monkeypatch, count,
                                                                         files):
    """RUN 4, MAX_RUNS 2: 3 items sort in memory; 4 make one run file, 8 two (merged directly),
    9 three runs, of which the first two are merged into a fourth file first."""
    made = []
    real = streaming.tempfile.TemporaryFile

    def counted(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(streaming.tempfile, "TemporaryFile", counted)
    items = [[i % 3, i] for i in range(count)]
    assert list(sorted_stream(items, key=lambda r: r[0])) == sorted(items, key=lambda r: r[0])
    assert len(made) == files
