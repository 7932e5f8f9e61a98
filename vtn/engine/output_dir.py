"""The run folder (OUTPUT_DIR): one run at a time, room for what the run keeps, and results that belong to
the config they are filed under.

- `check_output_dir`: at start-up, OUTPUT_DIR is writable and its disk holds what the run will keep.
- `RunLock`: `OUTPUT_DIR/run.lock` (pid, host, start time, command) held by the master process for the whole
  run; a second run on the same folder stops at once with one line naming the other. A lock left by a dead
  process of this machine is taken over with a warning.
- `check_same_config`: a checkpoint of OUTPUT_DIR (to resume, or to test) was made with the resolved config it
  stores; keys that change what is computed must be equal to the current ones. Keys that only change how a run
  executes (`EXECUTION_KEYS`) may differ; `TRAIN.RESUME_ALLOW_CHANGED` accepts named differences on purpose.
- `save_run_config`: `config.yaml` is the config a run trains with, written only once the check has passed;
  a run that only tests writes `config_test.yaml` beside it.
"""

import datetime
import json
import logging
import os
import shutil
import socket
import sys
from typing import Optional, Union

import yaml

from vtn.config import dump_config, get_cfg
from vtn.engine.checkpoint import checkpoint_dir, parse_stored_config
from vtn.utils.errors import OutputDirError, UserError

logger = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
CONFIG_NAME = "config.yaml"
TEST_CONFIG_NAME = "config_test.yaml"

# Keys (or whole groups) that change how a run is executed, not what it computes: they may differ between the
# run that wrote a checkpoint and the run that continues or tests it.
EXECUTION_KEYS = (
    "OUTPUT_DIR",
    "DATA.DECODE_VIDEO_ONCE",  # how frames are decoded, never which
    "DATA.SHARD_READ_MB",  # how shards are read, never which samples
    "DATA.DECODE_TIMEOUT",  # how long a decode may take (a rerun may allow more), never what it computes
    "NUM_GPUS",
    "NUM_SHARDS",
    "SHARD_ID",
    "DIST_BACKEND",
    "LOG_PERIOD",
    "LOG_SECONDS",
    "LOG_MODEL_INFO",
    "TRAIN.ENABLE",
    "TRAIN.AUTO_RESUME",
    "TRAIN.EVAL_PERIOD",
    "TRAIN.EVAL_PROTOCOL",
    "TRAIN.HOOKS",
    "TRAIN.CHECKPOINT_PERIOD",
    "TRAIN.CHECKPOINT_ITERS",
    "TRAIN.CHECKPOINT_KEEP",
    "TRAIN.RESUME_ALLOW_CHANGED",
    "TEST",
    "DEMO",
    "TENSORBOARD",
    "DATA_LOADER.NUM_WORKERS",
    "DATA_LOADER.PIN_MEMORY",
    "DATA_LOADER.PERSISTENT_WORKERS",
    "DATA.PATH_TO_DATA_DIR",
    "DATA.PATH_PREFIX",
    "SYNTHETIC.AUTO_GENERATE",
    "VTN.PRETRAINED_PATH",
    "VTN.BACKBONE_CHUNK_SIZE",
)
# Groups that only shape training: a run that only tests a checkpoint may set them as it likes.
TRAINING_ONLY_KEYS = (
    "TRAIN",
    "SOLVER",
    "AUG",
    "MIXUP",
    "DATA_LOADER",
    "SYNTHETIC",
    "VTN.DROP_PATH_RATE",
    "VTN.PRETRAINED",
    "DATA.TRAIN_JITTER_SCALES",
    "DATA.TRAIN_CROP_SIZE",
    "DATA.RANDOM_FLIP",
)


class ConfigMismatchError(UserError, ValueError):
    """A checkpoint of OUTPUT_DIR was made with another config than the current one."""


class RunLockedError(OutputDirError):
    """Another run holds OUTPUT_DIR."""


# ----------------------------------------------------------------------------- start-up checks
def checkpoint_bytes(model, cfg) -> int:
    """About the size of one checkpoint: the weights, the optimizer's state per weight (momentum: 1, AdamW: 2)
    and the EMA copy."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    slots = {"sgd": 1 if cfg.SOLVER.MOMENTUM > 0 else 0, "adamw": 2}.get(cfg.SOLVER.OPTIMIZING_METHOD, 2)
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return weights + slots * trainable + (weights if cfg.TRAIN.EMA_DECAY > 0 else 0)


def checkpoints_kept(cfg) -> int:
    """Checkpoint files the run holds at once: the periodic ones it keeps, the best one and the temporary file of a
    save in progress."""
    keep = cfg.TRAIN.CHECKPOINT_KEEP
    if keep <= 0:  # all of them
        keep = -(-cfg.SOLVER.MAX_EPOCH // cfg.TRAIN.CHECKPOINT_PERIOD)
    return keep + 2


def check_output_dir(cfg, model=None) -> None:
    """Fail at start-up, not after an epoch, when OUTPUT_DIR is unwritable or its disk cannot hold the
    checkpoints the run will keep (`model` given)."""
    folder = checkpoint_dir(cfg.OUTPUT_DIR)
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, ".write-test")
        with open(probe, "wb") as f:
            f.write(b"0" * 4096)
            f.flush()
            os.fsync(f.fileno())
        os.unlink(probe)
    except OSError as e:
        raise OutputDirError(
            f"OUTPUT_DIR {cfg.OUTPUT_DIR!r} is not writable: {e.strerror or e}. Choose another "
            "OUTPUT_DIR or fix its permissions."
        ) from e
    if model is not None:
        one = checkpoint_bytes(model, cfg)
        count = checkpoints_kept(cfg)
        free = shutil.disk_usage(folder).free
        if free < one * count:
            raise OutputDirError(
                f"OUTPUT_DIR {cfg.OUTPUT_DIR!r} has {free / 2**30:.2f} GiB free; the run keeps up to {count} "
                f"checkpoints of about {one / 2**30:.2f} GiB ({count - 2} periodic (TRAIN.CHECKPOINT_KEEP), the best "
                f"one and a temporary copy while saving): {one * count / 2**30:.2f} GiB. Free space, lower "
                "TRAIN.CHECKPOINT_KEEP or choose another OUTPUT_DIR."
            )


# ----------------------------------------------------------------------------- one run per folder
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


class RunLock:
    """`OUTPUT_DIR/run.lock`, created exclusively; `release` removes it (only if it is still ours)."""

    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, LOCK_NAME)
        self.held = False

    def _record(self) -> dict:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
        }

    def _read(self) -> Optional[dict]:
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable: a writer killed mid-write; treated as stale below

    def acquire(self) -> "RunLock":
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = self._read()
                if other is None:
                    continue  # released meanwhile
                self._take_over_or_fail(other)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self._record(), f)
            self.held = True
            return self
        raise RunLockedError(f"cannot take {self.path}: other runs keep taking it")

    def _take_over_or_fail(self, other: dict) -> None:
        pid, host = other.get("pid"), other.get("host")
        same_host = host == socket.gethostname()
        if other and not (same_host and isinstance(pid, int) and not _alive(pid)):
            where = "on this machine" if same_host else f"on host {host}"
            raise RunLockedError(
                f"OUTPUT_DIR {os.path.dirname(self.path)!r} is in use by another run (pid {pid} {where}, started "
                f"{other.get('started', '?')}: {other.get('command', '?')[:120]}). Use another OUTPUT_DIR, or wait for "
                f"that run; if it is dead, delete {self.path}."
            )
        logger.warning(
            "Taking over %s, left by a process that is gone (pid %s on %s, started %s)",
            self.path,
            pid,
            host,
            other.get("started", "?"),
        )
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def release(self) -> None:
        if self.held:
            other = self._read()
            if other and other.get("pid") == os.getpid() and other.get("host") == socket.gethostname():
                os.unlink(self.path)
            self.held = False


# ----------------------------------------------------------------------------- the config of a checkpoint
def _flatten(tree, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in (tree or {}).items():
        name = prefix + str(key)
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _covered(key: str, groups) -> bool:
    return any(key == g or key.startswith(g + ".") for g in groups)


def config_differences(saved: Union[str, dict], cfg, ignore=EXECUTION_KEYS) -> dict[str, tuple]:
    """{key: (saved value, current value)} of the keys outside `ignore` that differ; `saved` is a config as YAML
    text or as a dict. A key the saved config does not have (written by an older version) counts as its default
    value."""
    saved = _flatten((yaml.safe_load(saved) if isinstance(saved, str) else saved) or {})
    current = _flatten(yaml.safe_load(cfg.dump()))
    defaults = _flatten(yaml.safe_load(get_cfg().dump()))
    diffs = {}
    for key in sorted(set(current) | {k for k in saved if k.startswith("VTN.BACKBONE_KWARGS.")}):
        if _covered(key, ignore):
            continue
        old, new = saved.get(key, defaults.get(key)), current.get(key)
        if old != new:
            diffs[key] = (old, new)
    return diffs


def check_same_config(cfg, saved_yaml: Optional[str], checkpoint: str, testing: bool = False) -> list[str]:
    """Stop (ConfigMismatchError, one line) when the checkpoint of OUTPUT_DIR was made with another config than
    `cfg`, except for the keys TRAIN.RESUME_ALLOW_CHANGED accepts; returns the accepted keys. `testing`: only
    keys that change the model or the test data count."""
    if not saved_yaml:
        logger.warning("%s stores no config: cannot check that it was made with this one", checkpoint)
        return []
    ignore = EXECUTION_KEYS + (TRAINING_ONLY_KEYS if testing else ())
    diffs = config_differences(parse_stored_config(saved_yaml, checkpoint), cfg, ignore)
    allowed = list(cfg.TRAIN.RESUME_ALLOW_CHANGED)
    refused = {k: v for k, v in diffs.items() if not _covered(k, allowed)}
    if refused:
        shown = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in list(refused.items())[:8])
        more = f" (and {len(refused) - 8} more)" if len(refused) > 8 else ""
        keys = "[" + ", ".join(f"'{k}'" for k in refused) + "]"
        verb = "test" if testing else "continue"
        raise ConfigMismatchError(
            f"{checkpoint} was made with another config than this run's: {shown}{more}. To start a new run, set "
            f"another OUTPUT_DIR; to {verb} that run with these values on purpose, add TRAIN.RESUME_ALLOW_CHANGED "
            f'"{keys}".'
        )
    if diffs:
        logger.warning(
            "Continuing %s with changed keys, as TRAIN.RESUME_ALLOW_CHANGED accepts: %s",
            checkpoint,
            "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in diffs.items()),
        )
    return list(diffs)


def save_run_config(cfg, testing: bool = False, changed: bool = False) -> str:
    """Write the resolved config into OUTPUT_DIR: `config.yaml` for a run that trains (after its checkpoint's
    config was checked; with `changed`, the previous file is kept as config.<time>.yaml), `config_test.yaml` for a
    run that only tests, so that the config a run trained with is never overwritten."""
    path = os.path.join(cfg.OUTPUT_DIR, TEST_CONFIG_NAME if testing else CONFIG_NAME)
    if changed and os.path.isfile(path):
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        os.replace(path, os.path.join(cfg.OUTPUT_DIR, f"config.{stamp}.yaml"))
    dump_config(cfg, path)
    return path
