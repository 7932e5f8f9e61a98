import json
import os

import pytest

from tests.helpers import synthetic_opts, tiny_cfg
from vtn.engine.evaluator import results_table
from vtn.engine.tester import test_runs
from vtn.engine.tester import test as run_test

test_runs.__test__ = False  # a function of the package, not a test
run_test.__test__ = False


def test_runs_add_shuffled_passes_only_for_the_ablation():
    assert test_runs(tiny_cfg()) == [("multi_view", False)]
    assert test_runs(tiny_cfg("TEST.BOTH_PROTOCOLS", True, "TEST.SHUFFLE_ABLATION", True)) == [
        ("multi_view", False), ("full_video", False), ("multi_view", True), ("full_video", True)]
    # A run that shuffles everything has nothing to compare against.
    assert test_runs(tiny_cfg("TEST.FULL_VIDEO", True, "TEST.SHUFFLE_FRAMES", True, "TEST.SHUFFLE_ABLATION", True)) == [
        ("full_video", True)]


def test_results_table_has_a_column_per_class_group():
    row = dict(protocol="full_video_shuffled", views_per_video=1, top1=50.0, top5=100.0, mean_class_acc=50.0,
               num_videos=6, num_failed=0, class_group_top1={"order-dependent": 25.0, "appearance": 100.0})
    table = results_table([row, dict(row, protocol="full_video", class_group_top1={"order-dependent": 75.0})])
    header, _, shuffled, plain = table.splitlines()
    assert header.split()[-2:] == ["order-dependent", "appearance"]
    assert shuffled.split()[-2:] == ["25.00", "100.00"]
    assert plain.split()[0] == "full_video" and plain.split()[-1] == "75.00"


def test_shuffle_ablation_reports_order_and_appearance_groups(synthetic_dir, tmp_path):
    cfg = tiny_cfg(*synthetic_opts(synthetic_dir), "OUTPUT_DIR", str(tmp_path), "TEST.ALLOW_RANDOM_INIT", True,
                   "TEST.FULL_VIDEO", True, "TEST.SHUFFLE_ABLATION", True)
    rows = run_test(cfg)
    assert [r["protocol"] for r in rows] == ["full_video", "full_video_shuffled"]
    assert [r["shuffle_frames"] for r in rows] == [False, True]
    for r in rows:
        groups = r["class_group_top1"]
        assert set(groups) == {"order-dependent", "appearance"}
        order = [r["per_class_top1"][n] for n in ("square_growing", "square_shrinking", "disk_brightening", "disk_dimming")]
        assert groups["order-dependent"] == pytest.approx(sum(order) / 4, abs=1e-3)
    assert os.path.isfile(tmp_path / "predictions_full_video_shuffled.csv")
    saved = json.loads((tmp_path / "test_results.json").read_text())
    assert [r["protocol"] for r in saved["all_protocols"]] == ["full_video", "full_video_shuffled"]
