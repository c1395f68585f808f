"""The live-event log: in-place writes into zero-filled segments, recovery of torn tails."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from cfxlib.store.eventlog import EventLog, EventLogBusy


def batch(start: int, n: int) -> list[dict]:
    return [{"table": "nps_responses", "response_id": f"r{i}", "score": i % 11} for i in range(start, start + n)]


def test_events_come_back_in_order_across_segments(tmp_path):
    log = EventLog(tmp_path / "events", segment_bytes=4096)
    log.open()
    sent = []
    for b in range(40):
        events = batch(len(sent), 1 + b % 7)
        log.append(events)
        sent += events
    big = batch(len(sent), 150)  # larger than a segment: gets one of its own
    log.append(big)
    sent += big
    log.close()
    segments = log.segments()
    assert len(segments) >= 5
    assert all(p.stat().st_size >= 4096 for p in segments)
    assert EventLog(tmp_path / "events").read() == sent
    assert EventLog(tmp_path / "events").has_events()


def test_an_empty_log_has_no_events(tmp_path):
    assert EventLog(tmp_path / "nothing").read() == []
    log = EventLog(tmp_path / "events", segment_bytes=4096)
    log.open()
    log.close()
    assert not log.has_events() and log.read() == []


def test_a_torn_tail_is_ignored_and_cleared_before_writing_again(tmp_path):
    folder = tmp_path / "events"
    log = EventLog(folder, segment_bytes=8192)
    log.open()
    log.append(batch(0, 5))
    log.close()
    segment = log.segments()[0]
    data = bytearray(segment.read_bytes())
    end = data.index(0)
    # a crash mid-write: half a line, a gap the disk never got, then a later piece of the batch
    torn = b'{"table": "nps_responses", "respo'
    data[end : end + len(torn)] = torn
    data[end + 600 : end + 620] = b'se_id": "x"}\n{"tab'
    segment.write_bytes(bytes(data))
    assert EventLog(folder).read() == batch(0, 5)  # readers skip it

    log = EventLog(folder, segment_bytes=8192)
    log.open()  # the writer clears it
    assert segment.read_bytes()[end:].strip(b"\0") == b""
    log.append(batch(5, 3))
    log.close()
    assert EventLog(folder).read() == batch(0, 8)


def test_stray_bytes_in_a_later_segment_are_cleared(tmp_path):
    folder = tmp_path / "events"
    log = EventLog(folder, segment_bytes=4096)
    log.open()
    log.append(batch(0, 2))
    log.close()
    later = folder / "events-000002.jsonl"
    later.write_bytes(bytes(100) + b"junk from an unacknowledged write" + bytes(3000))
    log = EventLog(folder, segment_bytes=4096)
    log.open()
    assert later.read_bytes().strip(b"\0") == b""
    log.append(batch(2, 1))
    log.close()
    assert EventLog(folder).read() == batch(0, 3)


def test_writes_do_not_change_the_file_size(tmp_path):
    """The point of the design: fdatasync then has no metadata to commit."""
    log = EventLog(tmp_path / "events", segment_bytes=1 << 16)
    log.open()
    log.append(batch(0, 1))
    path = log.segments()[0]
    size, blocks = path.stat().st_size, path.stat().st_blocks
    for b in range(20):
        log.append(batch(b * 10, 10))
    assert (path.stat().st_size, path.stat().st_blocks) == (size, blocks)
    log.close()


def test_events_written_by_earlier_versions_are_read_first(tmp_path):
    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in batch(0, 3)))
    log = EventLog(folder, segment_bytes=4096)
    log.open()
    log.append(batch(3, 2))
    log.close()
    assert EventLog(folder).read() == batch(0, 5)


def test_one_writer_per_folder(tmp_path):
    first = EventLog(tmp_path / "events")
    first.open()
    with pytest.raises(EventLogBusy, match="second `cfx serve`"):
        EventLog(tmp_path / "events").open()
    first.close()
    again = EventLog(tmp_path / "events")
    again.open()
    again.close()


def test_segments_are_private(tmp_path):
    log = EventLog(tmp_path / "events", segment_bytes=4096)
    log.open()
    log.append(batch(0, 1))
    log.close()
    assert all(os.stat(p).st_mode & 0o077 == 0 for p in log.segments())


def test_concurrent_writers_lose_nothing_and_share_syncs(tmp_path):
    log = EventLog(tmp_path / "events", segment_bytes=8192)
    log.open()

    def writer(t: int) -> None:
        for b in range(30):
            log.sync(log.write([{"thread": t, "seq": b}]))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    position = log.write([{"thread": -1, "seq": 0}])
    log.sync(position)
    assert log._synced >= position
    log.sync(1)  # an earlier position: already covered, returns at once
    log.close()
    got = EventLog(tmp_path / "events").read()
    assert len(got) == 121 and len(log.segments()) > 1
    for t in range(4):
        assert [e["seq"] for e in got if e["thread"] == t] == list(range(30))  # each writer's order kept


def _append_batches(folder: str, worker: int, batches: int, ready, go) -> None:
    log = EventLog(Path(folder), segment_bytes=4096, shared=True)
    log.open()
    ready.set()
    go.wait(10)
    for b in range(batches):
        size = 1 + (b * 7 + worker) % 5
        log.append([{"worker": worker, "batch": b, "i": i, "pad": "x" * (b % 40)} for i in range(size)])
    log.close()


def test_shared_writers_in_several_processes_lose_and_mix_nothing(tmp_path):
    """Three processes append to one log at once across many small segments: every batch is
    there once, whole and contiguous, and each writer's batches keep their order."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    ready = [ctx.Event() for _ in range(3)]
    go = ctx.Event()
    procs = [ctx.Process(target=_append_batches, args=(str(tmp_path), w, 150, ready[w], go)) for w in range(3)]
    for p in procs:
        p.start()
    for r in ready:
        assert r.wait(20)
    go.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    events = EventLog(tmp_path).read()
    assert len(events) == sum(1 + (b * 7 + w) % 5 for w in range(3) for b in range(150))
    assert len(EventLog(tmp_path).segments()) > 10  # the test did cross segments
    runs: list[tuple[int, int]] = []
    for e in events:
        key = (e["worker"], e["batch"])
        if not runs or runs[-1] != key:
            runs.append(key)
    assert len(runs) == len(set(runs)) == 450  # each batch contiguous, none twice
    for w in range(3):
        assert [b for ww, b in runs if ww == w] == list(range(150))


def test_a_single_writer_and_shared_writers_exclude_each_other(tmp_path):
    single = EventLog(tmp_path)
    single.open()
    with pytest.raises(EventLogBusy):
        EventLog(tmp_path, shared=True).open()
    single.close()
    a, b = EventLog(tmp_path, shared=True), EventLog(tmp_path, shared=True)
    a.open()
    b.open()
    with pytest.raises(EventLogBusy):
        EventLog(tmp_path).open()
    _, start, end = a.write_marked([{"n": 1}])
    _, start2, end2 = b.write_marked([{"n": 2}, {"n": 3}])
    assert start2 == end and a.read_between(start, end) == [{"n": 1}]
    assert b.read_between(end, end2) == [{"n": 2}, {"n": 3}] and a.end_mark() == end2
    a.close()
    b.close()
