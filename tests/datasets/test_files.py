"""Finding listed videos on disk: exact, by another case of any path component, or missing."""

import os

from vtn.datasets.files import index_videos, is_video_file, locate_videos


def test_locate_videos_matches_case_and_reports_missing(tmp_path):
    (tmp_path / "Class A").mkdir()
    (tmp_path / "Class A" / "v_HandStand_g01.AVI").write_bytes(b"x")
    (tmp_path / "Class A" / "exact.mp4").write_bytes(b"x")
    listed = [
        str(tmp_path / "Class A" / "exact.mp4"),
        str(tmp_path / "class a" / "v_Handstand_g01.avi"),  # folder and file differ in case
        str(tmp_path / "Class A" / "gone.mp4"),
        "s3://bucket/video.mp4",
    ]
    found, missing = locate_videos(listed, str(tmp_path))
    assert found[:2] == [listed[0], str(tmp_path / "Class A" / "v_HandStand_g01.AVI")]
    assert found[2:] == [None, None] and missing == [2, 3]


def test_index_videos_by_name_and_counts_other_files(tmp_path):
    for rel in ("a/x_000001_000011.mkv", "b/y_000002_000012.webm", "a/notes.txt", "c/.hidden", "z.mp4.part"):
        os.makedirs(os.path.dirname(tmp_path / rel) or tmp_path, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    index, ignored = index_videos(str(tmp_path))
    assert index == {
        "x_000001_000011": str(tmp_path / "a/x_000001_000011.mkv"),
        "y_000002_000012": str(tmp_path / "b/y_000002_000012.webm"),
    }
    assert ignored == 2 and is_video_file("A.MP4") and not is_video_file("a.mp4.part")
