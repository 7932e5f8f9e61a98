"""Finding the videos of a dataset on disk or in object storage: video extensions, class folders, names listed
with another case.

Release lists and the files they name do not always agree: a video of the list may be absent (a normal part of
every Kinetics download), and a name may differ in case from the file on disk. `locate_videos` finds each
listed file (exactly, else by a case-insensitive match of each path component) and returns the ones it cannot
find apart, so that a dataset leaves them out and counts them instead of trying to decode them.

Folders may be local or `s3://` prefixes (read through vtn.storage, listed a few requests at a time, never one
request per video); an http(s) folder cannot be listed at all, so only its csv layouts can be read.
"""

import logging
import os
import posixpath
from typing import Optional

from vtn import storage
from vtn.storage.backends import scheme_of
from vtn.utils.errors import DatasetError

logger = logging.getLogger(__name__)

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
LISTED_PER_REQUEST = 1000  # objects of one page of an object-storage listing (S3's ListObjectsV2)


def is_video_file(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def is_http(path: str) -> bool:
    """Whether `path` is an http(s) URL: a single file that can be read, never a folder that can be listed."""
    return scheme_of(str(path)) in ("http", "https")


def check_listable(folder: str) -> None:
    """A DatasetError for an http(s) folder, which a layout that lists folders cannot use."""
    if is_http(folder):
        raise DatasetError(
            f"{folder}: an http(s) folder cannot be listed: use a csv layout (kinetics) with the video URLs, or s3://"
        )


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
    component below `root`), or None; and the positions of those not found.

    Remote paths are never looked up one request per video (Kinetics lists 240,000): on s3 each distinct
    folder of the list is listed once, or the folder above them all is walked once when that takes fewer
    requests, and names match as local ones do. An http(s) URL cannot be listed and is taken as present: a
    missing one then fails to decode and is reported as failed (testing) or skipped (training)."""
    lookup = _CaseInsensitiveDir()
    found: list[Optional[str]] = [None] * len(paths)
    remote = [i for i, path in enumerate(paths) if storage.is_remote(path)]
    for i, path in enumerate(paths):
        if storage.is_remote(path):
            continue
        found[i] = path if os.path.exists(path) else _case_insensitive(path, root, lookup)
    if remote:
        for i, hit in zip(remote, _locate_remote([paths[i] for i in remote], root)):
            found[i] = hit
    return found, [i for i, hit in enumerate(found) if hit is None]


def _case_insensitive(path: str, root: str, lookup: _CaseInsensitiveDir) -> Optional[str]:
    if "://" in path:  # a URL of a scheme vtn.storage does not read (iopath): no listing to match against
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


# ------------------------------------------------------------------------------------------ remote folders
def _bucket(url: str) -> str:
    """`scheme://bucket` of a URL."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


class _RemoteListings:
    """Names in remote folders, each folder listed at most once: exact names and `lower-case name -> name`.
    A folder that does not exist holds nothing; one that cannot be listed (denied, unreachable) is said once in
    the log and holds nothing, so that its videos count as missing."""

    def __init__(self):
        self._names: dict[str, set[str]] = {}
        self._lower: dict[str, dict[str, str]] = {}
        self._walked: list[str] = []

    def _set(self, folder: str, names) -> None:
        self._names[folder] = set(names)
        self._lower[folder] = {n.lower(): n for n in sorted(self._names[folder], reverse=True)}

    def walk(self, top: str) -> None:
        """List every file below `top` at once: the listings of all folders below it follow from the keys."""
        children: dict[str, set[str]] = {top: set()}
        for path in self._list(top, storage.walk_files):
            folder = top
            for part in path[len(top) + 1 :].split("/"):
                children.setdefault(folder, set()).add(part)
                folder = f"{folder}/{part}"
        for folder, names in children.items():
            self._set(folder, names)
        self._walked.append(top + "/")

    def listing(self, folder: str) -> tuple[set[str], dict[str, str]]:
        if folder not in self._names:
            below_walk = any(folder.startswith(top) for top in self._walked)
            self._set(folder, [] if below_walk else self._list(folder, storage.listdir))
        return self._names[folder], self._lower[folder]

    @staticmethod
    def _list(folder: str, how) -> list[str]:
        try:
            return how(folder)
        except FileNotFoundError:
            return []
        except storage.StorageError as e:
            logger.warning("%s cannot be listed (%s): the videos listed in it count as missing", folder, e)
            return []

    def find(self, path: str, root: str) -> Optional[str]:
        """`path`, or the same path with another case in some component below `root` (or the bucket)."""
        folder, name = path.rsplit("/", 1)
        names, lower = self.listing(folder)
        if name in names:
            return path
        top = root.rstrip("/") if storage.is_remote(root) and path.startswith(root.rstrip("/") + "/") else ""
        current = top or _bucket(path)
        for part in [p for p in path[len(current) + 1 :].split("/") if p]:
            names, lower = self.listing(current)
            part = part if part in names else lower.get(part.lower())
            if part is None:
                return None
            current = f"{current}/{part}"
        return current


def _locate_remote(paths: list[str], root: str) -> list[Optional[str]]:
    """locate_videos of URLs: http(s) ones as they are, the others matched against folder listings."""
    listings = _RemoteListings()
    listed = [p for p in paths if not is_http(p)]
    by_bucket: dict[str, set[str]] = {}
    for path in listed:
        by_bucket.setdefault(_bucket(path), set()).add(path.rsplit("/", 1)[0])
    for bucket, folders in by_bucket.items():
        count = sum(1 for p in listed if p.startswith(bucket + "/"))
        top = posixpath.commonpath([f.split("://", 1)[1] for f in folders])
        top = f"{bucket.split('://', 1)[0]}://{top}"
        if len(folders) > max(1, -(-count // LISTED_PER_REQUEST)) and top != bucket:
            listings.walk(top)  # fewer requests than one listing per folder
    return [path if is_http(path) else listings.find(path, root) for path in paths]


# ------------------------------------------------------------------------------------------ folders of videos
def _walk_order(rel: str) -> tuple:
    """A sort key of relative paths in os.walk's order: a folder's files (sorted), then its sub-folders."""
    parts = rel.split("/")
    return tuple((1, p) for p in parts[:-1]) + ((0, parts[-1]),)


def _remote_files(folder: str) -> list[str]:
    """The paths of the files below a remote folder, relative to it, in os.walk's order ([] when it does not
    exist)."""
    check_listable(folder)
    top = folder.rstrip("/")
    try:
        files = storage.walk_files(top)
    except FileNotFoundError:
        return []
    return sorted((p[len(top) + 1 :] for p in files if p.startswith(top + "/")), key=_walk_order)


def index_videos(folder: str) -> tuple[dict[str, str], int]:
    """Every video file under `folder` (recursively) by its name without extension, and the number of other
    files. A name found twice keeps the first one in sorted order."""
    index: dict[str, str] = {}
    ignored = 0
    if storage.is_remote(folder):
        for rel in _remote_files(folder):
            name = rel.rsplit("/", 1)[-1]
            if name.startswith("."):
                continue
            if is_video_file(name):
                index.setdefault(os.path.splitext(name)[0], storage.join(folder, rel))
            else:
                ignored += 1
        return index, ignored
    if not os.path.isdir(folder):
        return {}, 0
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


def _remote_class_files(split_dir: str) -> dict[str, list[str]]:
    """class folder name -> the paths of its files relative to it, of a remote `split_dir` (one walk); a
    DatasetError when it holds no class folder."""
    classes: dict[str, list[str]] = {}
    for rel in _remote_files(split_dir):
        name, sep, below = rel.partition("/")
        if sep and not name.startswith("."):
            classes.setdefault(name, []).append(below)
    if not classes:
        if not storage.isdir(split_dir):
            raise DatasetError(f"{split_dir} is not a folder (expected one sub-folder of videos per class)")
        raise DatasetError(f"{split_dir} has no class folders (expected {split_dir}/<class>/<video>)")
    return classes


def class_folders(split_dir: str) -> list[str]:
    """The class folder names of `split_dir` (sub-folders, hidden ones left out), sorted. A remote folder is
    walked once (an object-storage listing does not tell sub-folders from files by name)."""
    if storage.is_remote(split_dir):
        return sorted(_remote_class_files(split_dir))
    if not os.path.isdir(split_dir):
        raise DatasetError(f"{split_dir} is not a folder (expected one sub-folder of videos per class)")
    names = sorted(
        n for n in os.listdir(split_dir) if not n.startswith(".") and os.path.isdir(os.path.join(split_dir, n))
    )
    if not names:
        raise DatasetError(f"{split_dir} has no class folders (expected {split_dir}/<class>/<video>)")
    return names


def _unknown_class(split_dir: str, name: str, classes: list[str]) -> DatasetError:
    return DatasetError(
        f"{storage.join(split_dir, name)} is a class folder that the training split does not have "
        f"(classes are the folder names of train/: {len(classes)} of them)"
    )


def videos_of_class_folders(split_dir: str, classes: list[str]) -> tuple[list[str], list[int], int]:
    """(paths, labels, number of non-video files ignored) of `split_dir/<class>/...`, each class's videos found
    recursively and sorted; a folder of a class not in `classes` is an error that names it."""
    if storage.is_remote(split_dir):
        return _remote_videos_of_class_folders(split_dir, classes)
    index = {name: i for i, name in enumerate(classes)}
    paths, labels, ignored = [], [], 0
    for name in class_folders(split_dir):
        if name not in index:
            raise _unknown_class(split_dir, name, classes)
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


def _remote_videos_of_class_folders(split_dir: str, classes: list[str]) -> tuple[list[str], list[int], int]:
    """videos_of_class_folders of an s3 prefix, from one walk of it, in the order of a local folder."""
    index = {name: i for i, name in enumerate(classes)}
    paths, labels, ignored = [], [], 0
    files = _remote_class_files(split_dir)
    for name in sorted(files):
        if name not in index:
            raise _unknown_class(split_dir, name, classes)
        for rel in files[name]:
            file = rel.rsplit("/", 1)[-1]
            if file.startswith("."):
                continue
            if is_video_file(file):
                paths.append(storage.join(split_dir, name, rel))
                labels.append(index[name])
            else:
                ignored += 1
    return paths, labels, ignored
