"""Ranks that agree: at start-up every process of a multi-process run reports what it runs, and a difference
stops every rank with one line, before any step.

Nodes with another package version, another config or another copy of the data train "fine" and give wrong
numbers. `check_ranks_agree` gathers once (one all_gather_object) each rank's `rank_report`: the vtn version and
git commit, the versions of torch, timm, transformers and PyAV, the hash of the resolved config (less
`PER_RANK_KEYS`) with its values, and the fingerprint of the dataset; on a difference every rank raises
`RanksDisagree`, which names the ranks and what differs (for the config, the keys and both values). A single
process has nothing to compare and gathers nothing.
"""

import functools
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
from typing import Optional

import yaml

from vtn.engine import distributed as du
from vtn.utils.errors import UserError

PACKAGES = ("torch", "timm", "transformers", "av")

# Keys that may differ between ranks: the machine's index, and where each machine keeps its copy of the data (whose
# videos, labels and order the dataset fingerprint compares). OUTPUT_DIR is compared: rank 0 writes the checkpoints
# that every rank reads when the run resumes, so all must name the same (shared) folder.
PER_RANK_KEYS = ("SHARD_ID", "DATA.PATH_TO_DATA_DIR", "DATA.PATH_PREFIX", "DATA.FEATURES_DIR")

MAX_KEYS_SHOWN = 3


class RanksDisagree(UserError):
    """The processes of one run differ in code, packages, config or data; the message names ranks and differences."""


def package_version(name: str) -> str:
    """The version of package `name`: its module's __version__ when imported (torch's names its build, e.g.
    2.4.0+cu121), else its installed metadata (nothing is imported), or "not installed"."""
    version = getattr(sys.modules.get(name), "__version__", None)
    if isinstance(version, str):
        return version
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def vtn_version() -> str:
    """The version of the vtn package this process runs (its __version__, else its installed metadata)."""
    return getattr(sys.modules.get("vtn"), "__version__", None) or package_version("vtn")


@functools.lru_cache(maxsize=1)
def git_commit() -> Optional[str]:
    """`git rev-parse HEAD` of the checkout vtn runs from; None when vtn is not in a git checkout or git is missing
    (read once per process)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(sys.modules["vtn"].__file__)))
    if not os.path.exists(os.path.join(root, ".git")):
        return None
    try:
        done = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def software() -> dict:
    """{"vtn": version, "git commit": sha or None, "torch": version, ...} of this process."""
    found = {"vtn": vtn_version(), "git commit": git_commit()}
    found.update({name: package_version(name) for name in PACKAGES})
    return found


def flat_config(cfg) -> dict:
    """The resolved config as {"SOLVER.BASE_LR": 0.1, ...} (as cfg.dump() writes it), less PER_RANK_KEYS."""
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict) and value:
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(yaml.safe_load(cfg.dump()), "")
    return {k: v for k, v in flat.items() if k not in PER_RANK_KEYS}


def config_hash(flat: dict) -> str:
    """12 hex digits of sha1 over a flat config (keys sorted)."""
    return hashlib.sha1(json.dumps(flat, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:12]


def rank_report(cfg, dataset=None) -> dict:
    """What this process runs: `software()`, the config (its hash and values) and `dataset.fingerprint()`."""
    flat = flat_config(cfg)
    return {
        "software": software(),
        "config_hash": config_hash(flat),
        "config": flat,
        "dataset": None if dataset is None else f"{dataset.split} split {dataset.fingerprint()}",
    }


def config_differences(mine: dict, theirs: dict) -> list[str]:
    """ "KEY <value here> vs <value there>" for each key whose value differs (or exists on one side only)."""
    out = []
    for key in sorted(set(mine) | set(theirs)):
        a, b = mine.get(key, "(absent)"), theirs.get(key, "(absent)")
        if a != b:
            out.append(f"{key} {a} vs {b}")
    return out


def rank_list(ranks: list[int]) -> str:
    """ "rank 3", "ranks 1, 5", "ranks 1-7": consecutive ranks as a range."""
    parts, start = [], None
    for i, r in enumerate(ranks):
        start = r if start is None else start
        if i + 1 == len(ranks) or ranks[i + 1] != r + 1:
            parts.append(str(r) if r == start else f"{start}-{r}")
            start = None
    return ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(parts)


def differences(reports: list[dict]) -> list[str]:
    """What differs from rank 0, one phrase per difference with the ranks that have it, e.g. "rank 1 has config
    hash 1a2b3c4d5e6f vs 0f9e8d7c6b5a on rank 0 (SOLVER.BASE_LR 0.1 vs 0.05)"; [] when every rank agrees."""
    base = reports[0]
    found: dict[str, list[int]] = {}
    for rank, report in enumerate(reports[1:], start=1):
        for name, value in report["software"].items():
            if value != base["software"].get(name):
                found.setdefault(f"{name} {value} vs {base['software'].get(name)} on rank 0", []).append(rank)
        if report["config_hash"] != base["config_hash"]:
            keys = config_differences(report["config"], base["config"])
            more = f" and {len(keys) - MAX_KEYS_SHOWN} more keys" if len(keys) > MAX_KEYS_SHOWN else ""
            what = f"config hash {report['config_hash']} vs {base['config_hash']} on rank 0"
            found.setdefault(f"{what} ({'; '.join(keys[:MAX_KEYS_SHOWN])}{more})", []).append(rank)
        if report["dataset"] != base["dataset"]:
            found.setdefault(f"dataset {report['dataset']} vs {base['dataset']} on rank 0", []).append(rank)
    return [f"{rank_list(ranks)} {'has' if len(ranks) == 1 else 'have'} {what}" for what, ranks in found.items()]


def check_ranks_agree(cfg, dataset=None) -> None:
    """Gather every rank's `rank_report` (one all_gather_object; nothing outside a process group) and stop every
    rank with one line when any differs from rank 0's."""
    if du.get_world_size() == 1:
        return
    found = differences(du.all_gather_object(rank_report(cfg, dataset)))
    if found:
        raise RanksDisagree(
            f"ranks disagree: {'; '.join(found)}. Every process of a run needs the same code, packages, config and "
            "data: give every machine the same installation and the same command"
        )
