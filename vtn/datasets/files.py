"""Finding the videos of a dataset on disk: video extensions, class folders, names listed with another case.

Release lists and the files they name do not always agree: a video of the list may be absent (a normal part of
every Kinetics download), and a name may differ in case from the file on disk. `locate_videos` finds each
listed file (exactly, else by a case-insensitive match of each path component) and returns the ones it cannot
find apart, so that a dataset leaves them out and counts them instead of trying to decode them.
"""

import os
from typing import Optional

from vtn.utils.errors import DatasetError

# File extensions read as videos; any other file in a class folder is ignored and counted, never decoded.
VIDEO_EXTENSIONS = (
    ".mp4",
    ".avi",
    ".mkv",
    ".webm",
    ".mov",
    ".m4v",
    ".flv",
    ".mpg",
    ".mpeg",
    ".3gp",
    ".ogv",
    ".wmv",
)


def is_video_file(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


class _CaseInsensitiveDir:
    """Cached `lower-case name -> name on disk` listings of folders."""

    def __init__(self):
        self._listings: dict[str, dict[str, str]] = {}

    def child(self, folder: str, name: str) -> Optional[str]:
        if folder not in self._listings:
            try:
                names = os.listdir(folder)
            except OSError:
                names = []
            self._listings[folder] = {n.lower(): n for n in sorted(names, reverse=True)}
        found = self._listings[folder].get(name.lower())
        return os.path.join(folder, found) if found is not None else None


def locate_videos(paths: list[str], root: str = "") -> tuple[list[Optional[str]], list[int]]:
    """For each listed path, the file on disk (the path itself, or the same path with a different case in any
    component below `root`), or None; and the positions of those not found."""
    lookup = _CaseInsensitiveDir()
    found: list[Optional[str]] = []
    missing: list[int] = []
    for i, path in enumerate(paths):
        if os.path.exists(path):
            found.append(path)
            continue
        hit = _case_insensitive(path, root, lookup)
        found.append(hit)
        if hit is None:
            missing.append(i)
    return found, missing


def _case_insensitive(path: str, root: str, lookup: _CaseInsensitiveDir) -> Optional[str]:
    if "://" in path:  # a remote path (iopath): no listing to match against
        return None
    base = root if root and os.path.abspath(path).startswith(os.path.abspath(root) + os.sep) else ""
    rel = os.path.relpath(path, base) if base else path
    current = base or (os.sep if os.path.isabs(path) else ".")
    for part in [p for p in rel.split(os.sep) if p]:
        if os.path.exists(os.path.join(current, part)):
            current = os.path.join(current, part)
            continue
        current = lookup.child(current, part)
        if current is None:
            return None
    return current if os.path.isfile(current) else None


def index_videos(folder: str) -> tuple[dict[str, str], int]:
    """Every video file under `folder` (recursively) by its name without extension, and the number of other
    files. A name found twice keeps the first one in sorted order."""
    if not os.path.isdir(folder):
        return {}, 0
    index: dict[str, str] = {}
    ignored = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if is_video_file(name):
                index.setdefault(os.path.splitext(name)[0], os.path.join(dirpath, name))
            else:
                ignored += 1
    return index, ignored


def class_folders(split_dir: str) -> list[str]:
    """The class folder names of `split_dir` (sub-folders, hidden ones left out), sorted."""
    if not os.path.isdir(split_dir):
        raise DatasetError(f"{split_dir} is not a folder (expected one sub-folder of videos per class)")
    names = sorted(
        n for n in os.listdir(split_dir) if not n.startswith(".") and os.path.isdir(os.path.join(split_dir, n))
    )
    if not names:
        raise DatasetError(f"{split_dir} has no class folders (expected {split_dir}/<class>/<video>)")
    return names


def videos_of_class_folders(split_dir: str, classes: list[str]) -> tuple[list[str], list[int], int]:
    """(paths, labels, number of non-video files ignored) of `split_dir/<class>/...`, each class's videos found
    recursively and sorted; a folder of a class not in `classes` is an error that names it."""
    index = {name: i for i, name in enumerate(classes)}
    paths, labels, ignored = [], [], 0
    for name in class_folders(split_dir):
        if name not in index:
            raise DatasetError(
                f"{os.path.join(split_dir, name)} is a class folder that the training split does not have "
                f"(classes are the folder names of train/: {len(classes)} of them)"
            )
        for dirpath, dirnames, filenames in os.walk(os.path.join(split_dir, name)):
            dirnames.sort()
            for file in sorted(filenames):
                if file.startswith("."):
                    continue
                if is_video_file(file):
                    paths.append(os.path.join(dirpath, file))
                    labels.append(index[name])
                else:
                    ignored += 1
    return paths, labels, ignored
