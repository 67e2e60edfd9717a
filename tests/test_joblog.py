"""Progress lines: items done, rate and time left, and a last line when the work is done."""

import logging

from layergeom.joblog import Progress, tracked


def test_tracked_logs_every_item_and_a_last_line(caplog):
    with caplog.at_level(logging.INFO, logger="layergeom"):
        assert list(tracked(["a", "b", "c"], 3, "layers", every=0)) == ["a", "b", "c"]
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" (")[0] for line in lines] == ["1 / 3 layers", "2 / 3 layers", "3 / 3 layers", "3 / 3 layers"]
    assert all(" layers/s, " in line and line.endswith(" s left") for line in lines)
    assert lines[-1].startswith("3 / 3 layers (100.0%)") and lines[-1].endswith(", 0 s left")


def test_progress_note_and_quiet_between_intervals(caplog):
    progress = Progress(10, "steps", every=3600)
    with caplog.at_level(logging.INFO, logger="layergeom"):
        progress.update(4)
        progress.update(1, force=True, note="loss 1.2345")
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["5 / 10 steps"]
    assert caplog.records[0].getMessage().endswith(" s left; loss 1.2345")
