"""Reading annotation files: `path label` csv files and class-index files. Errors name the file and line.

Files and the data folder may be local or URLs (s3://, http(s)://: files read whole through vtn.storage);
paths listed relative to a URL are joined to it with `/`.
"""

import io
import json
import os
import posixpath
from typing import Optional

from iopath.common.file_io import g_pathmgr

from vtn import storage
from vtn.datasets.files import is_http
from vtn.utils.errors import DatasetError, UserError

HEAD_BYTES = 1 << 16


class AnnotationError(UserError, ValueError):
    """A malformed annotation file; the message names the file, the line and what was expected."""


def open_annotation(path: str, head: bool = False):
    """An annotation file opened for reading text as editors save it: UTF-8 with or without a byte-order mark
    (which would otherwise stick to the first path or class name), any line ending. A URL is read by one
    request: whole, or with `head` only its first HEAD_BYTES (enough for a header line)."""
    if not storage.is_remote(path):
        return g_pathmgr.open(path, "r", encoding="utf-8-sig", newline="")
    if not head:
        return storage.open_text(path, encoding="utf-8-sig")
    data = io.BytesIO(storage.read_bytes(path, 0, HEAD_BYTES))
    return io.TextIOWrapper(data, encoding="utf-8-sig", errors="replace", newline="")


def is_file(path: str) -> bool:
    """Whether `path` is a file: a local path (or another iopath one) or a URL of vtn.storage."""
    return storage.isfile(path) if storage.is_remote(path) else g_pathmgr.isfile(path)


def read_class_index(path: str) -> dict[str, int]:
    """Class name -> id from json `{name: id}`, lines `name,id`, or one name per line (id = line number)."""
    if not is_file(path):
        raise AnnotationError(f"class-index file {path} does not exist")
    with open_annotation(path) as f:
        text = f.read()
    if path.endswith(".json"):
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as e:
            raise AnnotationError(f"{path}: not valid JSON ({e})") from e
        if not isinstance(mapping, dict) or not all(isinstance(v, int) for v in mapping.values()):
            raise AnnotationError(f"{path}: expected a JSON object {{class name: integer id}}")
        return {str(k): int(v) for k, v in mapping.items()}
    mapping = {}
    for _lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        name, sep, idx = line.rpartition(",")
        if sep and idx.strip().isdigit():
            mapping[name.strip()] = int(idx)
        else:
            mapping[line] = len(mapping)
    if not mapping:
        raise AnnotationError(f"{path}: no classes found")
    return mapping


def class_names_from(mapping: dict[str, int]) -> list[str]:
    ids = sorted(mapping.values())
    if ids != list(range(len(ids))):
        raise AnnotationError(f"class ids must be 0..{len(ids) - 1} without gaps, got {ids[:10]}...")
    names = [""] * len(ids)
    for name, i in mapping.items():
        names[i] = name
    return names


def parse_label(text: str, mapping: Optional[dict[str, int]], where: str) -> int:
    text = text.strip()
    if text.lstrip("-").isdigit():
        label = int(text)
        if label < 0:
            raise AnnotationError(f"{where}: label {label} is negative")
        return label
    if mapping is None:
        raise AnnotationError(
            f"{where}: label {text!r} is not an integer; set DATA.CLASS_INDEX_FILE to map class names to ids"
        )
    if text not in mapping:
        raise AnnotationError(f"{where}: class {text!r} is not in the class-index file")
    return mapping[text]


def split_path_label(line: str, separator: str, mapping: Optional[dict[str, int]]) -> list[str]:
    """[path, label] of one line: the longest run of last fields that is a class name of `mapping` (Kinetics
    class names such as "air drumming" contain the default separator), else the last field."""
    sep = separator if separator.strip() else None
    if mapping:
        for k in range(line.strip().count(separator if sep else " "), 1, -1):
            parts = line.rsplit(sep, k)
            label = (separator if sep else " ").join(p.strip() for p in parts[1:])
            if len(parts) == k + 1 and parts[0].strip() and label in mapping:
                return [parts[0], label]
    return line.rsplit(sep, 1)


def read_path_label_csv(
    path: str, separator: str = " ", mapping: Optional[dict[str, int]] = None
) -> tuple[list[str], list[int]]:
    """PySlowFast's `path label` lines (the label is the last field, or a class name with the separator in it;
    paths may contain the separator)."""
    if not is_file(path):
        raise AnnotationError(f"annotation file {path} does not exist")
    paths, labels = [], []
    with open_annotation(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n\r")
            if not line.strip():
                continue
            where = f"{path}, line {lineno}"
            parts = split_path_label(line, separator, mapping)
            if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                raise AnnotationError(
                    f"{where}: expected 'path{separator}label' (DATA.PATH_LABEL_SEPARATOR = {separator!r}), "
                    f"got {line!r}"
                )
            paths.append(parts[0].strip())
            labels.append(parse_label(parts[1], mapping, where))
    if not paths:
        raise AnnotationError(f"annotation file {path} lists no videos")
    return paths, labels


def data_dir_of(cfg, holds: str) -> str:
    """DATA.PATH_TO_DATA_DIR, or a DatasetError that says what the folder should hold. An object-storage prefix
    is checked at once (one request), so that a missing bucket or prefix, or an unreachable endpoint, is one
    line at start-up rather than a missing annotation file later."""
    data_dir = cfg.DATA.PATH_TO_DATA_DIR
    if not data_dir:
        raise DatasetError(f"DATA.PATH_TO_DATA_DIR is empty: set it to the folder {holds}")
    if storage.is_remote(data_dir) and not is_http(data_dir) and not storage.isdir(data_dir):
        bucket = "/".join(data_dir.split("/", 3)[:3])
        if not storage.isdir(bucket):
            raise DatasetError(f"DATA.PATH_TO_DATA_DIR = {data_dir}: the bucket {bucket} does not exist")
        raise DatasetError(
            f"DATA.PATH_TO_DATA_DIR = {data_dir} does not exist (no object below it): set it to the folder {holds}"
        )
    return data_dir


def join_url(base: str, path: str) -> str:
    """`path` relative to the URL `base`, joined with `/` (`./` and `../` resolved: object storage takes them
    literally)."""
    scheme, rest = storage.join(base, path).split("://", 1)
    return f"{scheme}://{posixpath.normpath(rest)}"


def resolve_path(path: str, prefix: str, data_dir: str) -> str:
    """DATA.PATH_PREFIX joined to every path; without it, relative paths are relative to the data folder. A path
    listed as a URL stays as it is; one relative to a URL prefix or data folder is joined to it with `/`."""
    if storage.is_remote(path):
        return path
    base = "" if os.path.isabs(path) else prefix or data_dir
    if storage.is_remote(base):
        return join_url(base, path)
    if prefix:
        return os.path.join(prefix, path)
    return path if os.path.isabs(path) else os.path.join(data_dir, path)


def in_data_dir(path: str, data_dir: str) -> str:
    """A file of the config (e.g. DATA.CLASS_INDEX_FILE): as it is when absolute or a URL, else in the data
    folder."""
    if not path or os.path.isabs(path) or storage.is_remote(path):
        return path
    return join_url(data_dir, path) if storage.is_remote(data_dir) else os.path.join(data_dir, path)


def find_class_names(cfg) -> Optional[list[str]]:
    """Class names for predictions: DEMO.LABEL_FILE_PATH, else DATA.CLASS_INDEX_FILE (relative to the data
    folder), else a classes.json or moments_categories.txt in DATA.PATH_TO_DATA_DIR; None when there is none."""
    data_dir = cfg.DATA.PATH_TO_DATA_DIR
    candidates = [cfg.DEMO.LABEL_FILE_PATH, cfg.DATA.CLASS_INDEX_FILE]
    candidates = [in_data_dir(c, data_dir) for c in candidates]
    if data_dir:
        candidates += [in_data_dir("classes.json", data_dir), in_data_dir("moments_categories.txt", data_dir)]
    for path in candidates:
        if path and is_file(path):
            return class_names_from(read_class_index(path))
    if cfg.DEMO.LABEL_FILE_PATH:
        raise AnnotationError(f"DEMO.LABEL_FILE_PATH = {cfg.DEMO.LABEL_FILE_PATH!r} does not exist")
    return None


def check_label_range(paths: list[str], labels: list[int], num_classes: int, split: str) -> None:
    """Every label must be a class of the model: an error names how many are not, and the first one."""
    bad = [(p, lab) for p, lab in zip(paths, labels) if lab >= num_classes]
    if bad:
        raise DatasetError(
            f"{len(bad)} videos of the {split} split have labels >= MODEL.NUM_CLASSES = {num_classes}, "
            f"e.g. {bad[0][0]} with label {bad[0][1]}"
        )


def repeats_policy(split: str) -> str:
    """What a split does with rows that list a video again: training keeps them (a list may repeat videos on
    purpose), validation and testing count each video once."""
    return "training uses every row" if split == "train" else "each video is counted once, with its first row"


def repeated_rows(paths: list[str], labels: list[int]) -> tuple[list[int], list[str], int]:
    """Rows that list a video already listed above (the same path, normalised): (the index of each video's first
    row, in order; the paths listed more than once; how many repeats give another label than the first row)."""
    first: dict[str, int] = {}
    repeated: dict[str, None] = {}
    conflicting = 0
    for i, (path, label) in enumerate(zip(paths, labels)):
        key = os.path.normpath(path)
        if key in first:
            repeated[path] = None
            conflicting += int(labels[first[key]] != label)
        else:
            first[key] = i
    return list(first.values()), list(repeated), conflicting
