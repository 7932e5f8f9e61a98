"""Fingerprints of a dataset's videos: which videos with which labels, wherever the copy lies.

`dataset_fingerprint` (sorted pairs) is what test results report, so two results over the same videos and labels
compare equal; the shard writer stores it in its index so that testing from shards reports the local copy's.
`ViewDataset.fingerprint` (pairs in item order) is what the processes of a run compare at start-up.
"""

import hashlib
import os
from collections.abc import Iterable, Sequence


def relative_path(path: str, root: str) -> str:
    """`path` relative to the data folder `root` with "/" when it lies inside it, else as it is."""
    if root:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
        if not rel.startswith(".."):
            return rel.replace(os.sep, "/")
    return path


def pairs_digest(pairs: Iterable[str]) -> str:
    """12 hex digits of sha1 over the lines `pairs` ("path<TAB>label"), joined by newlines."""
    return hashlib.sha1("\n".join(pairs).encode("utf-8")).hexdigest()[:12]


def dataset_fingerprint(paths: Sequence[str], labels: Sequence[int], root: str = "") -> str:
    """12 hex digits of sha1 over the sorted (path relative to the data folder, label) pairs: two results with
    the same fingerprint were scored on the same videos with the same labels, wherever the copy lies."""
    return pairs_digest(sorted(f"{relative_path(p, root)}\t{int(label)}" for p, label in zip(paths, labels)))
