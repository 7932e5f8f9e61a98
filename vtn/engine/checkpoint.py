"""Checkpoints: atomic `.pyth` files that hold everything needed to continue a run exactly.

Layout of OUTPUT_DIR/checkpoints/:
    checkpoint_epoch_00003.pyth               after 3 completed epochs
    checkpoint_epoch_00004_iter_0000200.pyth  200 iterations into epoch 4 (TRAIN.CHECKPOINT_ITERS); epochs are
                                              counted from 1 in names, as in the log ("epoch 4/25")
    checkpoint_best.pyth                      best validation top-1 so far (kept apart from pruning)

A checkpoint is a dict: `model_state` (PySlowFast's key), `optimizer_state`, `scaler_state`, `ema_state`,
`epoch` and `iteration` (the position to continue from: epoch index in progress and iterations already done in
it; the learning rate is recomputed from it), `rng_state` (python, numpy, torch, cuda), `rng_states` (the same,
of every process by rank: each resumes with its own), `cfg` (the resolved config as YAML text), `best_metric`,
`format`. It loads with `torch.load(weights_only=True)`.
"""

import logging
import os
import random
import re
from typing import Optional

import numpy as np
import torch
import yaml

from vtn.engine.distributed import unwrap
from vtn.utils.errors import UserError
from vtn.utils.files import atomic_write, remove_temporaries
from vtn.utils.torch_files import load_torch_file

logger = logging.getLogger(__name__)

FORMAT = "vtn-checkpoint-1"
BEST_NAME = "checkpoint_best.pyth"
_NAME = re.compile(r"^checkpoint_epoch_(\d{5})(?:_iter_(\d{7}))?\.pyth$")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that cannot be used; the message names the file and the reason."""


def checkpoint_dir(output_dir: str) -> str:
    return os.path.join(output_dir, "checkpoints")


def checkpoint_name(epoch: int, iteration: int = 0) -> str:
    """The file name of the position (`epoch` index in progress, `iteration`s done in it) a checkpoint holds:
    `epoch` completed epochs when `iteration` is 0, else `iteration` iterations into epoch `epoch + 1`."""
    if iteration:
        return f"checkpoint_epoch_{epoch + 1:05d}_iter_{iteration:07d}.pyth"
    return f"checkpoint_epoch_{epoch:05d}.pyth"


def list_checkpoints(output_dir: str) -> list[tuple[int, int, str]]:
    """(epoch, iteration, path) of the periodic checkpoints, oldest first; (epoch, iteration) is the position
    the checkpoint holds, as `checkpoint_name` takes it."""
    folder = checkpoint_dir(output_dir)
    if not os.path.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        m = _NAME.match(name)
        if m:
            epoch, iteration = int(m.group(1)), int(m.group(2) or 0)
            found.append((epoch - 1 if iteration else epoch, iteration, os.path.join(folder, name)))
    return sorted(found)


# ----------------------------------------------------------------------------- RNG state
def capture_rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def rng_state_of_rank(data: dict, rank: int, world: int) -> Optional[dict]:
    """The RNG state that process `rank` had when checkpoint `data` was saved: each process draws its own random
    numbers (seeded RNG_SEED + rank), so a resumed process continues from its own state, not from rank 0's.
    Rank 0's for a checkpoint without them (an older one) or of another number of processes."""
    states = data.get("rng_states")
    if states and len(states) == world:
        return states[rank]
    return data.get("rng_state")


def restore_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- files
def atomic_save(obj, path: str) -> None:
    """torch.save through `atomic_write`: a crash or a full disk never leaves half a checkpoint."""
    atomic_write(path, lambda f: torch.save(obj, f))


def remove_stale_temporaries(output_dir: str) -> None:
    """Delete the `.tmp-*` files and folders a killed process may have left in OUTPUT_DIR and its checkpoint
    folder (half-written checkpoints, a test run's unpublished outputs)."""
    remove_temporaries(output_dir)
    remove_temporaries(checkpoint_dir(output_dir))


def load_checkpoint_file(path: str) -> dict:
    """Read a checkpoint with `weights_only=True`; CheckpointError names the file and what is wrong."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    data = load_torch_file(path, "checkpoint", CheckpointError)
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(data).__name__}, expected a dict of states")
    return data


def model_state_from(data: dict, path: str) -> dict[str, torch.Tensor]:
    """The model weights inside a checkpoint dict (ours, PySlowFast's, or a bare state dict)."""
    for key in ("model_state", "state_dict", "model"):
        if isinstance(data.get(key), dict):
            state = data[key]
            break
    else:
        if data and all(isinstance(v, torch.Tensor) for v in data.values()):
            state = data
        else:
            raise CheckpointError(
                f"checkpoint {path} has no model weights: expected a 'model_state' entry (keys found: "
                f"{', '.join(sorted(map(str, data))[:10])})"
            )
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def save_checkpoint(
    path: str,
    cfg,
    model,
    optimizer=None,
    scaler=None,
    ema=None,
    epoch: int = 0,
    iteration: int = 0,
    best_metric: Optional[float] = None,
    rng_states: Optional[list] = None,
    loader_state: Optional[dict] = None,
) -> str:
    """`rng_states`: the RNG state of every process, by rank (all_gather_object of capture_rng_state());
    `loader_state`: what the training loader needs besides (epoch, iteration) to continue its epoch exactly
    (vtn.datasets.loader_state; None for the local datasets)."""
    state = {
        "format": FORMAT,
        "model_state": unwrap(model).state_dict(),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "scaler_state": scaler.state_dict() if scaler is not None else None,
        "ema_state": ema.state_dict() if ema is not None else None,
        "epoch": epoch,
        "iteration": iteration,
        "best_metric": best_metric,
        "rng_state": capture_rng_state(),
        "rng_states": rng_states,
        "loader_state": loader_state,
        "cfg": cfg.dump(),
    }
    atomic_save(state, path)
    return path


def prune_checkpoints(output_dir: str, keep: int) -> None:
    """Keep the newest `keep` periodic checkpoints (0 keeps all); the best copy is never pruned."""
    if keep <= 0:
        return
    for _, _, path in list_checkpoints(output_dir)[:-keep]:
        os.unlink(path)


def parse_stored_config(text, path: str) -> Optional[dict]:
    """The config a checkpoint stores (its `cfg`, YAML text) as a dict; None when it stores none. A config that
    cannot be parsed is a CheckpointError: the file is damaged, and a run cannot be checked against it."""
    if not text:
        return None
    try:
        parsed = yaml.safe_load(text) if isinstance(text, str) else text
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0][:120]
        raise CheckpointError(
            f"checkpoint {path}: its stored config cannot be parsed ({first}); the file is damaged"
        ) from None
    if not isinstance(parsed, dict):
        raise CheckpointError(f"checkpoint {path}: its stored config is a {type(parsed).__name__}, not a mapping")
    return parsed


def find_resume_checkpoint(output_dir: str) -> Optional[tuple[str, dict]]:
    """The newest periodic checkpoint that loads and whose stored config parses; unusable ones are skipped with
    a warning."""
    for _, _, path in reversed(list_checkpoints(output_dir)):
        try:
            data = load_checkpoint_file(path)
            model_state_from(data, path)
            parse_stored_config(data.get("cfg"), path)
            for key in ("epoch", "iteration", "optimizer_state"):
                if key not in data:
                    raise CheckpointError(f"checkpoint {path} lacks '{key}'")
            return path, data
        except CheckpointError as e:
            logger.warning("Skipping unusable checkpoint: %s", e)
    return None


# ----------------------------------------------------------------------------- loading into a model
def mismatch_summary(report: dict[str, list[str]], total: int, show: int = 3) -> str:
    """`load_weights`' report in a few words: how many tensors of the model's `total` are missing, unexpected or
    of another shape, with the first `show` names of each."""
    parts = []
    for kind, label in (("missing", "missing"), ("unexpected", "unexpected"), ("reinitialised", "of another shape")):
        names = report[kind]
        if names:
            more = ", ..." if len(names) > show else ""
            parts.append(f"{len(names)} {label}: {', '.join(n.split(':')[0] for n in names[:show])}{more}")
    return f"of the model's {total} tensors, " + "; ".join(parts)


def check_finite(state: dict[str, torch.Tensor], source: str) -> None:
    """Weights with a NaN or an infinite value would score every video with NaN (and an arbitrary top-1):
    a CheckpointError that says how many tensors are affected and names the first few."""
    bad = [
        name
        for name, t in state.items()
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]
    if bad:
        raise CheckpointError(
            f"checkpoint {source} holds NaN or infinite values in {len(bad)} of its {len(state)} tensors "
            f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}): these weights cannot give a result. A run "
            "whose loss diverged may have saved them; take an earlier checkpoint"
        )


def load_weights(model, state: dict[str, torch.Tensor], source: str, strict: bool = False) -> dict[str, list[str]]:
    """Load `state` into `model`. Tensors whose shape differs keep the model's fresh initialisation.

    Every reinitialised, missing and unexpected tensor is logged by name; the report is returned.
    With `strict`, any of them is an error instead.
    """
    check_finite(state, source)
    m = unwrap(model)
    own = m.state_dict()
    report = {"reinitialised": [], "missing": [], "unexpected": []}
    usable = {}
    for name, tensor in state.items():
        if name not in own:
            report["unexpected"].append(name)
        elif own[name].shape != tensor.shape:
            report["reinitialised"].append(
                f"{name}: checkpoint {tuple(tensor.shape)} vs model {tuple(own[name].shape)}"
            )
        else:
            usable[name] = tensor
    report["missing"] = [n for n in own if n not in state]
    if strict and any(report.values()):
        raise CheckpointError(
            f"checkpoint {source} does not match the model exactly ({mismatch_summary(report, len(own))}): it was "
            "made for another model or config; name the config it was trained with"
        )
    m.load_state_dict(usable, strict=False)
    for kind, names in report.items():
        for n in names:
            logger.warning("%s: %s tensor %s", source, kind, n)
    logger.info(
        "Loaded %d tensors from %s (%d reinitialised, %d missing, %d unexpected)",
        len(usable),
        source,
        len(report["reinitialised"]),
        len(report["missing"]),
        len(report["unexpected"]),
    )
    return report
