"""The local-layout datasets read from object storage (moto's S3 server) and over http(s) (a Range server):
the same videos, labels and frames as the same layout on disk, listed a few requests at a time, a video absent
from the bucket counted as missing, and a missing bucket or unreachable endpoint one clear line at start-up."""

import json
import os
import shutil

import pytest
import torch

from tests.datasets.layout_cfg import layout_cfg
from tests.datasets.release_layouts import FOLDER_CLASSES, class_folders, kinetics_official
from tests.helpers import run_opts, run_tool
from tests.servers import RangeHTTPServer, free_port
from vtn import storage
from vtn.datasets import build_dataset, build_loader
from vtn.datasets.files import locate_videos
from vtn.engine.evaluator import dataset_fingerprint
from vtn.storage.backends import forget_backends
from vtn.utils.errors import DatasetError, UserError

CSV_OPTS = ("DATA.CLASS_INDEX_FILE", "classes.json")  # the synthetic dataset's csv lists name their classes


def upload_tree(local_root, prefix: str) -> None:
    """Every file below `local_root` to the same relative key below `prefix`."""
    for dirpath, _, filenames in os.walk(local_root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            storage.upload_file(path, prefix + "/" + os.path.relpath(path, local_root).replace(os.sep, "/"))


def relative(paths, root: str) -> list[str]:
    root = str(root).rstrip("/")
    assert all(str(p).startswith(root + ("/" if storage.is_remote(root) else os.sep)) for p in paths), paths[:2]
    return [str(p)[len(root) + 1 :].replace(os.sep, "/") for p in paths]


def assert_same_dataset(remote, local, remote_root: str, local_root, items=(0,)) -> None:
    """The same videos (relative to their roots), labels, classes and counts; equal frames for `items`."""
    assert relative(remote.paths, remote_root) == relative(local.paths, local_root)
    assert remote.labels == local.labels and remote.class_names == local.class_names
    assert relative(remote.missing, remote_root) == relative(local.missing, local_root)
    assert (remote.num_listed, remote.ignored_files) == (local.num_listed, local.ignored_files)
    for key in items:
        mine, theirs = remote[key], local[key]
        assert bool(mine["ok"]) and torch.equal(mine["frames"], theirs["frames"])
        assert int(mine["label"]) == int(theirs["label"])


@pytest.fixture()
def csv_bucket(s3_env, synthetic_dir):
    """The tests' synthetic dataset (PySlowFast csv lists with relative paths) uploaded to `<bucket>/k`."""
    upload_tree(synthetic_dir, s3_env + "/k")
    return s3_env + "/k"


def test_kinetics_csv_layout_in_a_bucket_reads_as_on_disk(csv_bucket, synthetic_dir):
    storage.remove(csv_bucket + "/" + open(os.path.join(synthetic_dir, "val.csv")).readline().split()[0])
    lines = open(os.path.join(synthetic_dir, "train.csv")).read().splitlines()
    lines[0], lines[1] = "./" + lines[0], lines[1].replace("videos/train/", "videos/val/../train/")
    storage.write_bytes(csv_bucket + "/train.csv", "\n".join(lines).encode())  # object keys have no ./ nor ../
    remote_cfg = layout_cfg("kinetics", csv_bucket, 6, *CSV_OPTS)
    local_cfg = layout_cfg("kinetics", synthetic_dir, 6, *CSV_OPTS)
    for split, items in (("train", [(0, 0), (5, 0)]), ("val", [1]), ("test", [0, 7])):
        storage.stats.reset()
        remote = build_dataset(remote_cfg, split)
        # the csv's header, the csv and the class list read, the videos' folder listed once: not one request per video
        assert storage.stats.snapshot()["requests"] <= 10
        local = build_dataset(local_cfg, split)
        if split == "val":  # the video deleted from the bucket: counted as missing, never decoded
            assert remote.missing == [local.paths[0].replace(synthetic_dir, csv_bucket)]
            assert remote.num_videos == local.num_videos - 1 and remote.num_listed == local.num_listed
            assert remote.labels == local.labels[1:] and relative(remote.paths, csv_bucket) == relative(
                local.paths[1:], synthetic_dir
            )
            assert torch.equal(remote[0]["frames"], local[1]["frames"])
            continue
        assert_same_dataset(remote, local, csv_bucket, synthetic_dir, items)


def test_class_folder_layout_in_a_bucket_reads_as_on_disk(s3_env, synthetic_dir, tmp_path):
    layout = class_folders(str(tmp_path), synthetic_dir)  # nested videos, .MP4, spaces, files that are not videos
    # a video named after the sub-folder: local folders list a folder's files before its sub-folders
    shutil.copyfile(layout["expected"]["train"][0][0], tmp_path / "train" / FOLDER_CLASSES[0] / "zz.mp4")
    upload_tree(tmp_path, s3_env + "/folders")
    remote_cfg = layout_cfg("folder", s3_env + "/folders", len(FOLDER_CLASSES))
    local_cfg = layout_cfg("folder", tmp_path, len(FOLDER_CLASSES))
    for split, items in (("train", [(0, 0), (3, 0)]), ("val", [2]), ("test", [0])):  # test reads val/
        remote, local = build_dataset(remote_cfg, split), build_dataset(local_cfg, split)
        assert_same_dataset(remote, local, s3_env + "/folders", tmp_path, items)
    assert remote.class_names == FOLDER_CLASSES
    storage.write_bytes(s3_env + "/folders/val/horses/a.mp4", b"x")
    with pytest.raises(DatasetError, match=r"folders/val/horses is a class folder that the training split does not"):
        build_dataset(remote_cfg, "val")


def test_official_kinetics_layout_in_a_bucket_reads_as_on_disk(s3_env, synthetic_dir, tmp_path):
    layout = kinetics_official(str(tmp_path), synthetic_dir)  # flat train/, val/<class>/, a clip never downloaded
    (tmp_path / "train" / ".DS_Store").write_bytes(b"x")  # hidden: neither a video nor counted
    upload_tree(tmp_path, s3_env + "/k400")
    remote_cfg = layout_cfg("kinetics", s3_env + "/k400", 4)
    local_cfg = layout_cfg("kinetics", tmp_path, 4)
    for split, items in (("train", [(0, 0), (6, 0)]), ("val", [3]), ("test", [0])):  # test: val (no labels)
        remote, local = build_dataset(remote_cfg, split), build_dataset(local_cfg, split)
        assert_same_dataset(remote, local, s3_env + "/k400", tmp_path, items)
    train = build_dataset(remote_cfg, "train")
    assert relative(train.missing, s3_env + "/k400") == relative(layout["missing"], tmp_path) != []
    assert train.ignored_files == 2


def test_listing_is_one_request_per_folder_or_one_walk_and_matches_case(s3_env):
    names = ["Class A/v_HandStand_g01.AVI", "Class A/exact.mp4", "B/x.mp4", "C/y.mp4", "D/z.mp4"]
    for name in names:
        storage.write_bytes(f"{s3_env}/d/{name}", b"x")
    root = s3_env + "/d"
    many = [f"{root}/B/m{i}.mp4" for i in range(3000)]  # as many pages as folders: each folder listed once
    listed = [
        f"{root}/Class A/exact.mp4",
        f"{root}/class a/v_Handstand_g01.avi",  # folder and file differ in case
        f"{root}/Class A/gone.mp4",
        f"{root}/B/x.mp4",
        *many,
        "http://127.0.0.1:9/never/asked.mp4",  # cannot be listed: taken as present
    ]
    storage.stats.reset()
    found, missing = locate_videos(listed, root)
    assert found[:4] == [listed[0], f"{root}/Class A/v_HandStand_g01.AVI", None, listed[3]]
    assert found[-1] == listed[-1] and missing == [2, *range(4, 4 + len(many))]
    # 3 folders listed once each, and the root once (a folder that differs in case is found from it)
    assert storage.stats.snapshot()["requests"] == 4
    # many folders, few videos: one walk of the folder above them all instead of one listing each
    storage.stats.reset()
    found, missing = locate_videos([f"{root}/{n}" for n in names[1:]] + [f"{root}/E/gone.mp4"], root)
    assert missing == [4] and storage.stats.snapshot()["requests"] == 1


def test_csv_layout_over_http_with_relative_paths_and_urls(synthetic_dir, tmp_path):
    served = tmp_path / "served"
    shutil.copytree(synthetic_dir, served)
    lines = open(served / "test.csv").read().splitlines()
    with RangeHTTPServer(served) as server:
        rel = lines[1].split()[0]
        lines[1] = f"{server.url}/{lines[1]}"  # a full URL in the list
        (served / "test.csv").write_text("\n".join(lines + ["videos/test/gone.mp4 triangle"]) + "\n")
        cfg = layout_cfg("kinetics", server.url + "/", 6, *CSV_OPTS)
        test = build_dataset(cfg, "test")
        local = build_dataset(layout_cfg("kinetics", synthetic_dir, 6, *CSV_OPTS), "test")
        assert test.labels[:-1] == local.labels and test.paths[1] == f"{server.url}/{rel}"
        assert test.missing == [] and test.paths[-1] == f"{server.url}/videos/test/gone.mp4"  # no listing over http
        views = test.num_views
        for key in (0, views + 1):
            assert torch.equal(test[key]["frames"], local[key]["frames"])
        gone = test[(test.num_videos - 1) * views]
        assert not bool(gone["ok"]) and test.is_missing(test.num_videos - 1)  # reported as failed, then missing
        with pytest.raises(DatasetError, match=r"an http\(s\) folder cannot be listed: use a csv layout"):
            build_dataset(layout_cfg("folder", server.url, 6), "train")


def test_a_missing_bucket_or_prefix_or_endpoint_is_one_line_at_build(s3_env, monkeypatch):
    bucket = s3_env.replace("s3://test-", "s3://gone-")
    cases = [
        (f"{bucket}/k", rf"the bucket {bucket} does not exist"),
        (f"{s3_env}/nothing", rf"{s3_env}/nothing does not exist \(no object below it\)"),
    ]
    for data_dir, message in cases:
        with pytest.raises(DatasetError, match=message) as info:
            build_dataset(layout_cfg("kinetics", data_dir, 6), "train")
        assert "\n" not in str(info.value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("VTN_STORAGE_RETRIES", "2")
    forget_backends()
    for dataset in ("kinetics", "folder"):
        with pytest.raises(UserError, match=rf"cannot reach the object storage .* {s3_env}/k\b") as info:
            build_dataset(layout_cfg(dataset, s3_env + "/k", 6), "val")
        assert "\n" not in str(info.value)


def test_loader_workers_read_the_bucket(csv_bucket, synthetic_dir):
    opts = (*CSV_OPTS, "DATA_LOADER.NUM_WORKERS", 2, "TEST.BATCH_SIZE", 6)
    remote = list(build_loader(layout_cfg("kinetics", csv_bucket, 6, *opts), "val"))
    local = list(build_loader(layout_cfg("kinetics", synthetic_dir, 6, *CSV_OPTS, "TEST.BATCH_SIZE", 6), "val"))
    assert len(remote) == len(local) > 0
    for mine, theirs in zip(remote, local):
        assert torch.equal(mine["frames"], theirs["frames"]) and torch.equal(mine["label"], theirs["label"])


@pytest.mark.slow
def test_train_and_test_on_a_bucket_with_run_net(csv_bucket, synthetic_dir, tmp_path):
    out = str(tmp_path / "out")
    opts = ["TRAIN.DATASET", "kinetics", "TEST.DATASET", "kinetics", "DATA.PATH_TO_DATA_DIR", csv_bucket, *CSV_OPTS]
    run_tool("run_net.py", *run_opts(synthetic_dir, out, "SOLVER.MAX_EPOCH", "1", *opts))
    with open(os.path.join(out, "test_results.json")) as f:
        results = json.load(f)
    assert results["num_listed"] == 6 and results["num_videos"] == 6 and results["num_failed"] == 0
    local = build_dataset(layout_cfg("kinetics", synthetic_dir, 6, *CSV_OPTS), "test")
    assert results["dataset_fingerprint"] == dataset_fingerprint(local.paths, local.labels, synthetic_dir)
