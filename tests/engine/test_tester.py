import json
import os
import shutil

import pytest

from tests.datasets.bad_files import make_bad_files
from tests.helpers import synthetic_opts, tiny_cfg
from vtn.engine.evaluator import dataset_fingerprint, results_table
from vtn.engine.tester import test as run_test
from vtn.engine.tester import test_run
from vtn.utils.errors import DatasetError

test_run.__test__ = False
run_test.__test__ = False


def test_test_protocols_are_validated_and_old_keys_say_the_new_spelling():
    from vtn.config import ConfigError

    with pytest.raises(ConfigError, match="TEST.PROTOCOLS = .*'full_vid'.*multi_view, full_video"):
        tiny_cfg("TEST.PROTOCOLS", ["full_vid"])
    with pytest.raises(ConfigError, match="a list of different test protocols"):
        tiny_cfg("TEST.PROTOCOLS", ["multi_view", "multi_view"])
    for old, new in (
        ("TEST.FULL_VIDEO", "TEST.PROTOCOLS ['full_video']"),
        ("TEST.BOTH_PROTOCOLS", "TEST.PROTOCOLS ['multi_view', 'full_video']"),
        ("TEST.SHUFFLE_FRAMES", "TEST.PROTOCOLS ['full_video_shuffled']"),
        ("TRAIN.EVAL_FULL_VIDEO", "TRAIN.EVAL_PROTOCOL full_video"),
    ):
        with pytest.raises(ConfigError) as e:
            tiny_cfg(old, True)
        assert f"{old} no longer exists; write" in str(e.value) and new in str(e.value) and "\n" not in str(e.value)


def test_results_table_marks_the_headline_and_has_a_column_per_class_group():
    row = dict(
        protocol="full_video",
        views_per_video=1,
        top1=50.0,
        top5=100.0,
        mean_class_acc=50.0,
        top1_listed=40.0,
        top5_listed=80.0,
        num_videos=8,
        num_listed=10,
        num_missing=1,
        num_failed=1,
        class_group_top1={"order-dependent": 75.0},
    )
    shuffled = dict(
        row, protocol="full_video_shuffled", class_group_top1={"order-dependent": 25.0, "appearance": 100.0}
    )
    lines = results_table([row, shuffled]).splitlines()
    header, _, plain, shuffled_line, footnote = lines
    assert header.split()[-2:] == ["order-dependent", "appearance"]
    for name in ("top-1 listed", "top-5 listed", "scored", "listed", "missing", "failed"):
        assert name in header
    assert plain.split()[:2] == ["full_video", "*"] and shuffled_line.split()[0] == "full_video_shuffled"
    assert "*" not in shuffled_line and footnote.startswith("* headline")
    assert plain.split()[2:12] == ["1", "50.00", "100.00", "50.00", "40.00", "80.00", "8", "10", "1", "1"]
    assert plain.split()[-1] == "75.00" and shuffled_line.split()[-2:] == ["25.00", "100.00"]


def test_a_builder_that_returns_another_view_than_asked_stops_the_test_pass(synthetic_dir, monkeypatch):
    """A test pass is named and shuffled by its view: a dataset of another view (a builder that does not pass its
    `view` on) would be tested unshuffled under the shuffled pass's name."""
    from vtn.config import view_spec
    from vtn.datasets import build_loader
    from vtn.engine import tester

    cfg = tiny_cfg(*synthetic_opts(synthetic_dir))
    monkeypatch.setattr(tester, "build_loader", lambda cfg, split, view: build_loader(cfg, split, "full_video"))
    with pytest.raises(DatasetError, match="asked for the view full_video_shuffled and returned a dataset of full_vid"):
        test_run(cfg, None, None, None, view_spec(cfg, "full_video_shuffled"), None, None)


def test_dataset_fingerprint_is_the_same_for_copies_and_changes_with_videos_or_labels(tmp_path):
    a = dataset_fingerprint(["/data/k400/val/b.mp4", "/data/k400/val/a.mp4"], [1, 0], "/data/k400")
    assert a == dataset_fingerprint(["/mnt/copy/val/a.mp4", "/mnt/copy/val/b.mp4"], [0, 1], "/mnt/copy")
    assert len(a) == 12
    assert a != dataset_fingerprint(["/data/k400/val/a.mp4", "/data/k400/val/b.mp4"], [0, 2], "/data/k400")
    assert a != dataset_fingerprint(["/data/k400/val/a.mp4"], [0], "/data/k400")


@pytest.fixture(scope="module")
def ablation_run(synthetic_dir, tmp_path_factory):
    """Both protocols and the shuffle ablation, the full video primary: four test runs of random weights."""
    out = tmp_path_factory.mktemp("ablation")
    opts = [
        *synthetic_opts(synthetic_dir),
        "OUTPUT_DIR",
        str(out),
        "TEST.ALLOW_RANDOM_INIT",
        True,
        "TEST.PROTOCOLS",
        ["full_video", "multi_view"],
        "TEST.SHUFFLE_ABLATION",
        True,
        "VTN.ATTENTION_WINDOW",
        16,
    ]
    return out, opts, run_test(tiny_cfg(*opts), model=ablation_model())


def ablation_model():
    """The random weights of every run of the ablation tests: the same whatever ran before (the module fixture
    runs before the autouse seeding of the test that first asks for it)."""
    from tests.helpers import tiny_model

    return tiny_model("MODEL.NUM_CLASSES", 6, "VTN.ATTENTION_WINDOW", 16, seed=0)


def test_the_headline_of_test_results_is_the_primary_protocol(ablation_run):
    out, _, rows = ablation_run
    assert [r["protocol"] for r in rows] == ["full_video", "multi_view", "full_video_shuffled", "multi_view_shuffled"]
    saved = json.loads((out / "test_results.json").read_text())
    # not the last run (the shuffled ablation), not a secondary protocol
    assert saved["protocol"] == "full_video" and saved["shuffle_frames"] is False
    primary = json.loads((out / "test_results_full_video.json").read_text())
    assert saved["top1"] == primary["top1"] and saved["top5"] == primary["top5"]
    assert [r["protocol"] for r in saved["all_protocols"]] == [r["protocol"] for r in rows]
    assert not [f for f in os.listdir(out) if f.startswith(".tmp-")]  # written atomically


def test_shuffle_ablation_reports_groups_differs_from_the_plain_run_and_is_reproducible(ablation_run):
    out, opts, rows = ablation_run
    for r in rows:
        groups = r["class_group_top1"]
        assert set(groups) == {"order-dependent", "appearance"}
        order = [
            r["per_class_top1"][n] for n in ("square_growing", "square_shrinking", "disk_brightening", "disk_dimming")
        ]
        assert groups["order-dependent"] == pytest.approx(sum(order) / 4, abs=1e-3)
    assert [r["shuffle_frames"] for r in rows] == [False, False, True, True]

    def scores(name):
        return [s for p in json.loads((out / f"predictions_{name}.json").read_text()) for s in p["top5_scores"]]

    # shuffling really happened: the scores of the shuffled runs differ from the plain ones
    assert scores("full_video") != scores("full_video_shuffled")
    assert scores("multi_view") != scores("multi_view_shuffled")
    # ... and the shuffle is seeded from the config: the same again, in a run with another batch size
    first = scores("full_video_shuffled")
    again = run_test(tiny_cfg(*opts, "TEST.PROTOCOLS", ["full_video"], "TEST.BATCH_SIZE", 2), model=ablation_model())
    assert [r["protocol"] for r in again] == ["full_video", "full_video_shuffled"]
    assert scores("full_video_shuffled") == pytest.approx(first, abs=1e-5)
    other_seed = run_test(tiny_cfg(*opts, "TEST.PROTOCOLS", ["full_video"], "RNG_SEED", 5), model=ablation_model())
    assert other_seed[0]["protocol"] == "full_video"
    assert scores("full_video_shuffled") != first


def test_missing_and_undecodable_videos_are_counted_apart_and_as_wrong_in_listed_accuracy(synthetic_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    bad = make_bad_files(str(data / "bad"), str(next((data / "videos" / "test").glob("*.mp4"))))
    with open(data / "test.csv", "a") as f:
        f.write(f"{os.path.relpath(bad['missing'], data)} triangle\n")
        f.write(f"{os.path.relpath(bad['truncated'], data)} stripes\n")
    out = tmp_path / "out"
    rows = run_test(
        tiny_cfg(
            *synthetic_opts(str(data)),
            "OUTPUT_DIR",
            str(out),
            "TEST.ALLOW_RANDOM_INIT",
            True,
            "TEST.PROTOCOLS",
            ["full_video"],
        )
    )
    r = json.loads((out / "test_results.json").read_text())
    assert r == {**rows[0], "all_protocols": rows}
    assert (r["num_listed"], r["num_missing"], r["num_failed"], r["num_videos"]) == (8, 1, 1, 6)
    hits1, hits5 = round(r["top1"] * 6 / 100), round(r["top5"] * 6 / 100)
    assert r["top1_listed"] == pytest.approx(100 * hits1 / 8, abs=1e-3)
    assert r["top5_listed"] == pytest.approx(100 * hits5 / 8, abs=1e-3) and r["top5_listed"] <= 75.0
    # the fingerprint covers the scored videos only: the clean copy of the data gives the same one
    clean = run_test(
        tiny_cfg(
            *synthetic_opts(synthetic_dir),
            "OUTPUT_DIR",
            str(tmp_path / "clean"),
            "TEST.ALLOW_RANDOM_INIT",
            True,
            "TEST.PROTOCOLS",
            ["full_video"],
        )
    )
    assert clean[0]["dataset_fingerprint"] == r["dataset_fingerprint"] and clean[0]["num_listed"] == 6
    preds = {os.path.basename(p["path"]): p for p in json.loads((out / "predictions_full_video.json").read_text())}
    assert preds["missing.mp4"]["status"] == "missing" and preds["truncated.mp4"]["status"] == "failed"
    assert preds["missing.mp4"]["failed"] and not preds["missing.mp4"]["top5_ids"]
    assert sum(p["status"] == "scored" for p in preds.values()) == 6
    csv_rows = (out / "predictions_full_video.csv").read_text().splitlines()
    assert csv_rows[0].split(",")[3] == "status" and any(",missing," in line for line in csv_rows)
    # left out of the dataset, never decoded: listed in OUTPUT_DIR
    assert (out / "missing_videos_test.txt").read_text().splitlines() == [str(data / "bad" / "missing.mp4")]


def test_a_killed_test_run_leaves_the_previous_results_whole_and_a_full_one_replaces_them_together(
    synthetic_dir, tmp_path, monkeypatch
):
    from vtn.engine import tester

    opts = [
        *synthetic_opts(synthetic_dir),
        "OUTPUT_DIR",
        str(tmp_path),
        "TEST.ALLOW_RANDOM_INIT",
        True,
        "TEST.PROTOCOLS",
        ["full_video", "multi_view"],
    ]
    first = run_test(tiny_cfg(*opts))
    before = {f: (tmp_path / f).read_text() for f in os.listdir(tmp_path) if f.startswith(("test_", "pred"))}
    assert len(before) == 7  # results, two per-run results, two runs x (csv, json) predictions

    calls = []
    real = tester.run_inference_passes

    def dies_in_the_second_run(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after the first protocol's predictions were made
        return real(*args, **kwargs)

    monkeypatch.setattr(tester, "run_inference_passes", dies_in_the_second_run)
    with pytest.raises(KeyboardInterrupt):
        run_test(tiny_cfg(*opts, "RNG_SEED", 3))
    monkeypatch.undo()
    after = {f: (tmp_path / f).read_text() for f in os.listdir(tmp_path) if f.startswith(("test_", "pred"))}
    assert after == before  # nothing new beside the old results
    run_test(tiny_cfg(*opts, "VTN.HEAD_DROPOUT", 0.0))
    previous = os.listdir(tmp_path / "previous_tests")
    assert len(previous) == 1 and sorted(os.listdir(tmp_path / "previous_tests" / previous[0])) == sorted(before)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    # every output of a test run names the checkpoint it came from
    for name in ("predictions_full_video", "predictions_multi_view"):
        assert {p["checkpoint"] for p in json.loads((tmp_path / f"{name}.json").read_text())} == {"random weights"}
        assert (tmp_path / f"{name}.csv").read_text().splitlines()[0].endswith(",checkpoint")
    assert first[0]["checkpoint"] is None


def test_multi_view_scores_are_the_sum_of_the_softmax_of_each_videos_six_views(synthetic_dir, tmp_path):
    """2 clips x 3 crops: each video's score is the sum of the softmax of its 6 views, computed here view by view;
    the headline top-1 is what the predictions file says."""
    import torch

    from tests.helpers import tiny_model
    from vtn.datasets import build_dataset

    cfg = tiny_cfg(*synthetic_opts(synthetic_dir), "OUTPUT_DIR", str(tmp_path), "TEST.ALLOW_RANDOM_INIT", True)
    model = tiny_model("MODEL.NUM_CLASSES", 6, seed=3)
    rows = run_test(cfg, model=model)
    dataset = build_dataset(cfg, "test", "multi_view")
    assert dataset.num_views == 6 and cfg.TEST.NUM_ENSEMBLE_VIEWS == 2 and cfg.TEST.NUM_SPATIAL_CROPS == 3
    preds = json.loads((tmp_path / "predictions_multi_view.json").read_text())
    with torch.no_grad():
        for v, pred in enumerate(preds):
            views = [dataset[v * 6 + k] for k in range(6)]
            assert sorted((int(x["temporal_idx"]), int(x["spatial_idx"])) for x in views) == [
                (t, s) for t in range(2) for s in range(3)
            ]
            frames = torch.stack([x["frames"] for x in views])
            frame_idx = torch.stack([x["frame_idx"] for x in views])
            summed = model(frames=frames, frame_idx=frame_idx).softmax(-1).sum(0)
            top = (summed / 6).topk(5)
            assert pred["top5_ids"] == top.indices.tolist()
            assert pred["top5_scores"] == pytest.approx(top.values.tolist(), abs=1e-5)
    top1 = 100.0 * sum(p["top5_ids"][0] == p["label"] for p in preds) / len(preds)
    assert rows[0]["top1"] == pytest.approx(top1, abs=1e-3)  # the json keeps 4 decimals


def _test_phase_worker(rank, port, data_dir, out_dir, result_dir, opts):
    """One of 2 gloo processes running the real test phase; writes the rows it returns."""
    import torch
    import torch.distributed as dist

    from tests.helpers import tiny_model

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model = tiny_model("MODEL.NUM_CLASSES", 6, seed=3)  # the same weights on every process
        rows = run_test(tiny_cfg(*synthetic_opts(data_dir), "OUTPUT_DIR", out_dir, *opts), model=model)
        with open(os.path.join(result_dir, f"rank{rank}.json"), "w") as f:
            json.dump(rows, f)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_test_like_one(synthetic_dir, tmp_path):
    """The test phase on 2 processes (each a share of the videos, each video decoded once by one of 2 loader
    workers) gives the results and the per-video labels and scores of one process decoding every view on its own
    (DATA.DECODE_VIDEO_ONCE False, the per-view reference), on videos of every class (labels 0-5, not all zero)."""
    import socket

    import torch.multiprocessing as mp

    from tests.helpers import tiny_model

    opts = [
        "TEST.ALLOW_RANDOM_INIT",
        True,
        "TEST.PROTOCOLS",
        ["multi_view", "full_video"],
    ]
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    single = run_test(
        tiny_cfg(*synthetic_opts(synthetic_dir), "OUTPUT_DIR", one, *opts, "DATA.DECODE_VIDEO_ONCE", False),
        model=tiny_model("MODEL.NUM_CLASSES", 6, seed=3),
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workers = [*opts, "DATA_LOADER.NUM_WORKERS", 2]
    mp.spawn(_test_phase_worker, args=(port, synthetic_dir, two, str(tmp_path), workers), nprocs=2)
    for rank in (0, 1):
        rows = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert [r["protocol"] for r in rows] == ["multi_view", "full_video"]
        for a, b in zip(rows, single):
            for key in ("top1", "top5", "mean_class_acc", "num_videos", "num_listed", "per_class_top1"):
                assert a[key] == pytest.approx(b[key], abs=1e-3), f"rank {rank} {a['protocol']} {key}"
    for name in ("multi_view", "full_video"):
        a = json.loads((tmp_path / "two" / f"predictions_{name}.json").read_text())
        b = json.loads((tmp_path / "one" / f"predictions_{name}.json").read_text())
        assert sorted(p["label"] for p in b) == [0, 1, 2, 3, 4, 5]
        assert [p["label"] for p in a] == [p["label"] for p in b]
        assert [p["top5_ids"] for p in a] == [p["top5_ids"] for p in b]
        for p, q in zip(a, b):
            assert p["top5_scores"] == pytest.approx(q["top5_scores"], abs=1e-5)
        assert [p["status"] for p in a] == ["scored"] * 6


def test_decoding_each_video_once_gives_the_per_view_results(synthetic_dir, tmp_path):
    """One process: the multi-view test with each video decoded once gives test_results.json and the per-video
    predictions of the per-view path, bit for bit (the same frames, so the same logits)."""
    from tests.helpers import tiny_model

    opts = ["TEST.ALLOW_RANDOM_INIT", True, "TEST.NUM_ENSEMBLE_VIEWS", 3, "TEST.NUM_SPATIAL_CROPS", 3]
    outs = {}
    for once in (False, True):
        out = tmp_path / str(once)
        cfg = tiny_cfg(*synthetic_opts(synthetic_dir), "OUTPUT_DIR", str(out), *opts, "DATA.DECODE_VIDEO_ONCE", once)
        run_test(cfg, model=tiny_model("MODEL.NUM_CLASSES", 6, seed=3))
        outs[once] = out
    for name in ("test_results.json", "predictions_multi_view.json"):
        a, b = (json.loads((outs[once] / name).read_text()) for once in (True, False))
        if name == "test_results.json":
            a, b = ({k: v for k, v in r.items() if k != "seconds"} for r in (a, b))
        assert a == b, name


def test_a_shuffled_view_runs_in_the_pass_of_its_unshuffled_view():
    from vtn.config import passes_of, view_spec

    cfg = tiny_cfg()
    mv, fv = view_spec(cfg, "multi_view"), view_spec(cfg, "full_video")
    mv_s, fv_s = mv.with_shuffled(True), fv.with_shuffled(True)
    assert passes_of([mv, fv, mv_s, fv_s]) == [(mv, mv_s), (fv, fv_s)]
    assert passes_of([mv_s]) == [(mv_s, None)]  # alone: its own pass (frames read as the unshuffled view's)
    assert passes_of([mv, fv_s]) == [(mv, None), (fv_s, None)]


def test_the_shuffle_ablation_reuses_the_embeddings_and_equals_its_own_pass(synthetic_dir, tmp_path, monkeypatch):
    """TEST.SHUFFLE_ABLATION runs the shuffled test from the unshuffled pass's embeddings: one loader (one decode)
    per protocol, and the shuffled results and predictions of a shuffled pass run on its own with the same seed."""
    from tests.helpers import tiny_model
    from vtn.engine import tester

    loaders = []
    real_build_loader = tester.build_loader
    monkeypatch.setattr(tester, "build_loader", lambda *a: loaders.append(a[2].name) or real_build_loader(*a))
    base = (*synthetic_opts(synthetic_dir), "TEST.ALLOW_RANDOM_INIT", True, "TEST.NUM_ENSEMBLE_VIEWS", 2)
    both, alone = tmp_path / "both", tmp_path / "alone"
    embedded = {}

    def counted_model(name):
        model = tiny_model("MODEL.NUM_CLASSES", 6, seed=3)
        embedded[name] = 0

        def count(module, args, output):
            embedded[name] += args[0].shape[0]

        model.backbone.register_forward_hook(count)
        return model

    run_test(tiny_cfg(*base, "OUTPUT_DIR", str(both), "TEST.SHUFFLE_ABLATION", True), model=counted_model("both"))
    assert loaders == ["multi_view"]  # the shuffled run decoded nothing of its own
    run_test(
        tiny_cfg(*base, "OUTPUT_DIR", str(alone), "TEST.PROTOCOLS", ["multi_view_shuffled"]),
        model=counted_model("alone"),
    )
    assert embedded["both"] == embedded["alone"] > 0  # two runs' results from one pass of the backbone
    for name in ("test_results_multi_view_shuffled.json", "predictions_multi_view_shuffled.json"):
        a, b = (json.loads((folder / name).read_text()) for folder in (both, alone))
        assert a == b, name
    plain = json.loads((both / "predictions_multi_view.json").read_text())
    shuffled = json.loads((both / "predictions_multi_view_shuffled.json").read_text())
    assert [p["top5_scores"] for p in plain] != [p["top5_scores"] for p in shuffled]  # the shuffle did happen
