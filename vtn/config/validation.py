"""Checks of a merged config: each rule names the key, the value and what is allowed.

Rules are data, not an if-chain: `RULES` holds value checks, `CHOICES` holds keys whose value must be one of a
set of names, `CHECKS` holds whole-config checks. The names of a registry (backbones, datasets, optimizers, ...)
and the checks that need a package (a RandAugment string, a backbone name) are registered by the package that
owns them (`register_choices`, `register_check`), so this package imports nothing of vtn but vtn.utils; the
tools' command line (vtn/launch/cli.py) imports every package first, so a bad value fails at load time there.
"""

from typing import Callable

from fvcore.common.config import CfgNode

from vtn.config.batch_plan import SCALE_RULES, check_world
from vtn.config.views import EVAL_PROTOCOLS, SHORT_VIDEO_MODES, TEST_PROTOCOL_NAMES
from vtn.utils.errors import ConfigError
from vtn.utils.registry import did_you_mean


def _get(cfg: CfgNode, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def world_size(cfg: CfgNode) -> int:
    """Processes of the whole job: NUM_GPUS per machine (at least one) times NUM_SHARDS machines."""
    return max(1, cfg.NUM_GPUS) * cfg.NUM_SHARDS


def _prob(v, _cfg) -> bool:
    return 0.0 <= v < 1.0


def _positive(v, _cfg) -> bool:
    return v > 0


def _non_negative(v, _cfg) -> bool:
    return v >= 0


def _len3_positive(v, _cfg) -> bool:
    return len(v) == 3 and all(x > 0 for x in v)


# key -> (check(value, cfg), what is allowed)
RULES: list[tuple[str, Callable, Callable]] = [
    (
        "SYNTHETIC.CYCLE_RANGE",
        lambda v, c: len(v) == 2 and (list(v) == [0, 0] or 0 < v[0] <= v[1]),
        lambda c: "[low, high] seconds with 0 < low <= high, or [0, 0] for one ramp over the whole video",
    ),
    ("NUM_GPUS", _non_negative, lambda c: "an integer >= 0 (0 runs on the CPU)"),
    ("NUM_SHARDS", _positive, lambda c: "an integer >= 1"),
    ("SHARD_ID", lambda v, c: 0 <= v < c.NUM_SHARDS, lambda c: f"0 .. NUM_SHARDS-1 = {c.NUM_SHARDS - 1}"),
    ("LOG_PERIOD", _positive, lambda c: "an integer >= 1"),
    ("LOG_SECONDS", _non_negative, lambda c: "seconds >= 0 (0: a line every LOG_PERIOD iterations only)"),
    ("DIST_TIMEOUT", _positive, lambda c: "a whole number of seconds >= 1 (torch's default: 1800)"),
    (
        "DETERMINISTIC",
        lambda v, c: not (v and c.CUDNN_BENCHMARK),
        lambda c: "False while CUDNN_BENCHMARK is True (benchmarking picks algorithms by speed); set one of them False",
    ),
    ("TRAIN.BATCH_SIZE", _positive, lambda c: "an integer >= 1 (see also SOLVER.REFERENCE_WORLD_SIZE)"),
    ("SOLVER.REFERENCE_WORLD_SIZE", _non_negative, lambda c: "an integer >= 0 (0: the config is used as written)"),
    ("TRAIN.EVAL_PERIOD", _non_negative, lambda c: "an integer >= 0 (0 disables validation)"),
    ("TRAIN.CHECKPOINT_PERIOD", _positive, lambda c: "an integer >= 1"),
    ("TRAIN.CHECKPOINT_ITERS", _non_negative, lambda c: "an integer >= 0 (0 disables)"),
    ("TRAIN.CHECKPOINT_KEEP", _non_negative, lambda c: "an integer >= 0 (0 keeps all)"),
    ("TRAIN.ACCUMULATION_STEPS", _positive, lambda c: "an integer >= 1"),
    ("TRAIN.EMA_DECAY", lambda v, c: 0.0 <= v < 1.0, lambda c: "0 (off) or a decay in (0, 1)"),
    ("TRAIN.MAX_BAD_STEPS", _non_negative, lambda c: "an integer >= 0"),
    ("TEST.NUM_ENSEMBLE_VIEWS", _positive, lambda c: "an integer >= 1"),
    ("TEST.NUM_SPATIAL_CROPS", lambda v, c: v in (1, 3), lambda c: "1 (center) or 3 (left, center, right)"),
    ("TEST.FULL_VIDEO_FRAMES", _positive, lambda c: "an integer >= 1"),
    (
        "TEST.PROTOCOLS",
        lambda v, c: len(v) >= 1 and len(set(v)) == len(v) and all(p in TEST_PROTOCOL_NAMES for p in v),
        lambda c: f"a list of different test protocols, the headline first, each of {', '.join(TEST_PROTOCOL_NAMES)}",
    ),
    ("DATA.SPLIT_ID", lambda v, c: v in (1, 2, 3), lambda c: "1, 2 or 3 (the official splits of UCF101 and HMDB51)"),
    (
        "DATA.RANDOM_FLIP",
        lambda v, c: v is None or isinstance(v, bool),
        lambda c: "True, False, or None for the dataset's default (off for ssv2, on for the others)",
    ),
    ("DATA.NUM_FRAMES", _positive, lambda c: "an integer >= 1"),
    ("DATA.SAMPLING_RATE", _positive, lambda c: "an integer >= 1"),
    ("DATA.TARGET_FPS", _positive, lambda c: "a frame rate > 0"),
    ("DATA.TEMPORAL_FOOTPRINT", _non_negative, lambda c: "seconds >= 0 (0: NUM_FRAMES x SAMPLING_RATE / TARGET_FPS)"),
    (
        "DATA.TRAIN_JITTER_SCALES",
        lambda v, c: len(v) == 2 and 0 < v[0] <= v[1] and v[0] >= c.DATA.TRAIN_CROP_SIZE,
        lambda c: f"[min, max] with DATA.TRAIN_CROP_SIZE ({c.DATA.TRAIN_CROP_SIZE}) <= min <= max",
    ),
    ("DATA.TRAIN_CROP_SIZE", _positive, lambda c: "a size in pixels > 0"),
    (
        "DATA.TEST_SCALE",
        lambda v, c: v >= c.DATA.TEST_CROP_SIZE,
        lambda c: f"a short-side size >= DATA.TEST_CROP_SIZE ({c.DATA.TEST_CROP_SIZE})",
    ),
    ("DATA.TEST_CROP_SIZE", _positive, lambda c: "a size in pixels > 0"),
    ("DATA.MEAN", lambda v, c: len(v) == 3, lambda c: "three numbers (R, G, B)"),
    ("DATA.STD", _len3_positive, lambda c: "three positive numbers (R, G, B)"),
    ("DATA.FEATURES_FPS", _non_negative, lambda c: "frames per second >= 0"),
    (
        "DATA.FEATURES_DIR",
        lambda v, c: bool(v) or "features" not in (c.TRAIN.DATASET, c.TEST.DATASET),
        lambda c: (
            "the folder of the feature cache (tools/extract_features.py) when TRAIN.DATASET or TEST.DATASET "
            "is 'features'"
        ),
    ),
    (
        "DATA.FEATURES_SOURCE",
        lambda v, c: v != "features",
        lambda c: (
            "a video dataset to extract from (e.g. 'kinetics', 'synthetic'), or '' for TRAIN.DATASET / TEST.DATASET"
        ),
    ),
    (
        "VTN.FREEZE_BACKBONE",
        lambda v, c: v or not (c.TRAIN.ENABLE and c.TRAIN.DATASET == "features"),
        lambda c: (
            "True when training on the feature cache (TRAIN.DATASET 'features'): cached embeddings cannot "
            "train the backbone"
        ),
    ),
    (
        "AUG.ENABLE",
        lambda v, c: not v or not (c.TRAIN.ENABLE and c.TRAIN.DATASET == "features"),
        lambda c: (
            "False with TRAIN.DATASET 'features': RandAugment and random erasing change pixels, and the cache "
            "holds embeddings"
        ),
    ),
    (
        "MIXUP.ENABLE",
        lambda v, c: not v or not (c.TRAIN.ENABLE and c.TRAIN.DATASET == "features"),
        lambda c: "False with TRAIN.DATASET 'features': mixup and cutmix mix pixels, and the cache holds embeddings",
    ),
    ("DATA_LOADER.NUM_WORKERS", _non_negative, lambda c: "an integer >= 0"),
    ("DATA_LOADER.NUM_RETRIES", _non_negative, lambda c: "an integer >= 0"),
    ("DATA_LOADER.REPEATED_AUG", _positive, lambda c: "an integer >= 1 (1 disables repeated augmentation; DeiT: 3)"),
    ("SOLVER.BASE_LR", _positive, lambda c: "a learning rate > 0"),
    ("SOLVER.MAX_EPOCH", _positive, lambda c: "an integer >= 1"),
    ("SOLVER.WEIGHT_DECAY", _non_negative, lambda c: "a number >= 0"),
    ("SOLVER.MOMENTUM", lambda v, c: 0.0 <= v < 1.0, lambda c: "a number in [0, 1)"),
    ("SOLVER.WARMUP_EPOCHS", _non_negative, lambda c: "epochs >= 0"),
    ("SOLVER.WARMUP_START_LR", _non_negative, lambda c: "a learning rate >= 0"),
    ("SOLVER.COSINE_END_LR", _non_negative, lambda c: "a learning rate >= 0"),
    ("SOLVER.CLIP_GRAD_L2NORM", _non_negative, lambda c: "a norm >= 0 (0 disables clipping)"),
    ("SOLVER.BACKBONE_LR_SCALE", _non_negative, lambda c: "a multiplier >= 0"),
    (
        "SOLVER.BETAS",
        lambda v, c: len(v) == 2 and all(0.0 <= b < 1.0 for b in v),
        lambda c: "two numbers in [0, 1)",
    ),
    (
        "SOLVER.STEPS",
        lambda v, c: len(v) >= 1 and v[0] == 0 and all(a < b for a, b in zip(v, v[1:])),
        lambda c: "increasing epochs starting with 0, e.g. [0, 20, 25]",
    ),
    (
        "SOLVER.LRS",
        lambda v, c: len(v) == len(c.SOLVER.STEPS) and all(x >= 0 for x in v),
        lambda c: f"one non-negative multiplier per SOLVER.STEPS entry ({len(c.SOLVER.STEPS)})",
    ),
    ("MODEL.NUM_CLASSES", _positive, lambda c: "an integer >= 1"),
    ("MODEL.LABEL_SMOOTHING", _prob, lambda c: "a value in [0, 1)"),
    ("VTN.NUM_LAYERS", _positive, lambda c: "an integer >= 1"),
    ("VTN.NUM_HEADS", _positive, lambda c: "an integer >= 1"),
    (
        "VTN.HIDDEN_DIM",
        lambda v, c: v == 0 or (v > 0 and v % c.VTN.NUM_HEADS == 0),
        lambda c: f"0 (the backbone's feature size) or a positive multiple of VTN.NUM_HEADS ({c.VTN.NUM_HEADS})",
    ),
    ("VTN.INTERMEDIATE_SIZE", _non_negative, lambda c: "0 (derived from the backbone) or a size > 0"),
    ("VTN.MLP_DIM", _non_negative, lambda c: "0 (the hidden size) or a size > 0"),
    (
        "VTN.ATTENTION_WINDOW",
        lambda v, c: v > 0 and v % 2 == 0,
        lambda c: "a positive even number (the whole window; half of it on each side of a token)",
    ),
    ("VTN.ATTENTION_DROPOUT", _prob, lambda c: "a probability in [0, 1)"),
    ("VTN.HIDDEN_DROPOUT", _prob, lambda c: "a probability in [0, 1)"),
    ("VTN.HEAD_DROPOUT", _prob, lambda c: "a probability in [0, 1)"),
    ("VTN.DROP_PATH_RATE", _prob, lambda c: "a probability in [0, 1) (0 disables stochastic depth)"),
    ("VTN.LAYER_NORM_EPS", _positive, lambda c: "a number > 0"),
    ("VTN.MAX_POSITION_EMBEDDINGS", _positive, lambda c: "an integer >= 1"),
    ("VTN.BACKBONE_CHUNK_SIZE", _non_negative, lambda c: "an integer >= 0 (0 = all frames in one pass)"),
    ("VTN.INIT_STD", _positive, lambda c: "a number > 0"),
    ("MIXUP.PROB", lambda v, c: 0.0 <= v <= 1.0, lambda c: "a probability in [0, 1]"),
    ("MIXUP.SWITCH_PROB", lambda v, c: 0.0 <= v <= 1.0, lambda c: "a probability in [0, 1]"),
    ("MIXUP.LABEL_SMOOTH_VALUE", _prob, lambda c: "a value in [0, 1)"),
    ("AUG.RE_PROB", lambda v, c: 0.0 <= v <= 1.0, lambda c: "a probability in [0, 1]"),
    ("AUG.RE_COUNT", _positive, lambda c: "an integer >= 1"),
    ("MIXUP.ALPHA", _non_negative, lambda c: "a number >= 0 (0 disables mixup)"),
    ("MIXUP.CUTMIX_ALPHA", _non_negative, lambda c: "a number >= 0 (0 disables cutmix)"),
    (
        "MIXUP.ENABLE",
        lambda v, c: not v or c.MIXUP.ALPHA > 0 or c.MIXUP.CUTMIX_ALPHA > 0,
        lambda c: "False while MIXUP.ALPHA and MIXUP.CUTMIX_ALPHA are both 0 (nothing to mix)",
    ),
]


def _fixed(*names: str) -> Callable[[], list[str]]:
    return lambda: list(names)


# key -> the names it may take (packages add the names of their registries with `register_choices`)
CHOICES: dict[str, Callable[[], list[str]]] = {
    "VTN.POS_INDEX_MODE": _fixed("modulo", "clamp"),
    "DATA.ENSEMBLE_METHOD": _fixed("sum", "max"),
    "DATA.SHORT_VIDEO_MODE": _fixed(*SHORT_VIDEO_MODES),
    "TEST.CHECKPOINT_SELECT": _fixed("last", "best"),
    "TRAIN.EVAL_PROTOCOL": _fixed(*EVAL_PROTOCOLS),
    "TRAIN.AMP_DTYPE": _fixed("float16", "bfloat16"),
    "SYNTHETIC.CODEC": _fixed("h264", "mpeg4"),
    "AUG.RE_MODE": _fixed("const", "rand", "pixel"),
    "DATA_LOADER.REPEATED_AUG_EPOCH": _fixed("dataset", "repeated"),
    "FEATURES.DTYPE": _fixed("float32", "float16"),
    "AUG.INTERPOLATION": _fixed("bicubic", "bilinear", "random"),
    "SOLVER.SCALE_RULE": _fixed(*SCALE_RULES),
}

# whole-config checks registered by packages: `check(cfg)` raises ConfigError
CHECKS: list[Callable[[CfgNode], None]] = []


def _check_batch_plan(cfg: CfgNode) -> None:
    """The training and test batches split over NUM_GPUS x NUM_SHARDS processes (as written, or as
    SOLVER.REFERENCE_WORLD_SIZE and SOLVER.SCALE_RULE adapt them); torchrun's world is checked at launch."""
    check_world(cfg, world_size(cfg))


CHECKS.append(_check_batch_plan)


def register_choices(key: str, names: Callable[[], list[str]]) -> None:
    """`key` must be one of `names()` (e.g. a registry's `names`), checked when a config is loaded."""
    CHOICES[key] = names


def register_check(check: Callable[[CfgNode], None]) -> Callable[[CfgNode], None]:
    """Run `check(cfg)` (it raises ConfigError) on every config loaded from now on; usable as a decorator."""
    if check not in CHECKS:
        CHECKS.append(check)
    return check


def validate_config(cfg: CfgNode) -> None:
    """Raise one ConfigError for the first key whose value is not allowed."""
    for key, check, allowed in RULES:
        value = _get(cfg, key)
        if not check(value, cfg):
            raise ConfigError(f"{key} = {value!r} is not allowed: expected {allowed(cfg)}.")
    for key, names in CHOICES.items():
        value = _get(cfg, key)
        allowed = names()
        if value not in allowed:
            raise ConfigError(
                f"{key} = {value!r} is not one of: {', '.join(map(repr, allowed))}." + did_you_mean(value, allowed)
            )
    for check in CHECKS:
        check(cfg)
