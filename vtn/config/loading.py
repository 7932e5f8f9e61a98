"""Loading configs: YAML files with `_BASE_` inheritance, `KEY VALUE` overrides, type checks, validation.

Unlike a bare YACS merge, every problem is reported as one `ConfigError` that names the source (file or
command line), the full key, the value and what would be accepted.
"""

import ast
import os
from collections.abc import Iterable, Sequence
from typing import Any, Optional, Union

import yaml
from fvcore.common.config import CfgNode

from vtn.config.defaults import get_cfg
from vtn.config.validation import validate_config
from vtn.utils.errors import ConfigError
from vtn.utils.files import atomic_write
from vtn.utils.registry import did_you_mean


def _all_keys(node: CfgNode, prefix: str = "") -> list[str]:
    keys = []
    for k, v in node.items():
        keys.append(prefix + k)
        if isinstance(v, CfgNode):
            keys.extend(_all_keys(v, prefix + k + "."))
    return keys


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(value), type(value).__name__
    )


def _parse_bool(value: str) -> Optional[bool]:
    return {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}.get(value.lower())


def _coerce(value: Any, default: Any, key: str, source: str) -> Any:
    """`value` converted to the type of `default`, or a ConfigError naming the key."""
    if value is None:
        return value
    if (
        default is None
    ):  # a key that takes None or a value (e.g. DATA.RANDOM_FLIP): words as the command line gives them
        if isinstance(value, str) and value.lower() in ("none", "null", "~"):
            return None
        return _parse_bool(value) if isinstance(value, str) and _parse_bool(value) is not None else value
    expected = type(default)
    if isinstance(value, tuple):
        value = list(value)
    if type(value) is expected:
        if expected is list and default:
            return [_coerce(v, default[0], f"{key}[{i}]", source) for i, v in enumerate(value)]
        return value
    if expected is float and type(value) is int:
        return float(value)
    if isinstance(value, str):
        # YAML reads "1e-3" as a string and the command line gives strings: accept what parses.
        if expected is bool and _parse_bool(value) is not None:
            return _parse_bool(value)
        if expected in (int, float):
            try:
                return expected(value)
            except ValueError:
                pass
    raise ConfigError(
        f"{source}: {key} must be {_type_name(default)} (default {default!r}), got {value!r} ({_type_name(value)})."
    )


class _WholeValue(dict):
    """A dict given as one value on the command line (`VTN.BACKBONE_KWARGS "{depth: 2}"`): it replaces a
    free-form group instead of merging into it."""


# keys of earlier versions -> how to write them now (one line each, never a silent "unknown key")
REPLACED_KEYS = {
    "TEST.FULL_VIDEO": "TEST.PROTOCOLS ['full_video'] (or ['multi_view']); the first protocol is the headline",
    "TEST.BOTH_PROTOCOLS": "TEST.PROTOCOLS ['multi_view', 'full_video']; the first protocol is the headline",
    "TEST.SHUFFLE_FRAMES": "a shuffled protocol in TEST.PROTOCOLS, e.g. TEST.PROTOCOLS ['full_video_shuffled']",
    "TRAIN.EVAL_FULL_VIDEO": "TRAIN.EVAL_PROTOCOL full_video (or single_view)",
}


def _merge_dict(cfg: CfgNode, updates: dict, source: str, root: CfgNode, prefix: str = "") -> None:
    for k, v in updates.items():
        full = prefix + k
        if isinstance(v, _WholeValue) and k in cfg and isinstance(cfg[k], CfgNode) and cfg[k].is_new_allowed():
            cfg[k] = CfgNode(dict(v), new_allowed=True)
            continue
        if k not in cfg:
            if cfg.is_new_allowed():
                cfg[k] = CfgNode(v, new_allowed=True) if isinstance(v, dict) else v
                continue
            if full in REPLACED_KEYS:
                raise ConfigError(f"{source}: {full} no longer exists; write {REPLACED_KEYS[full]}.")
            raise ConfigError(f"{source}: unknown config key {full}." + did_you_mean(full, _all_keys(root)))
        old = cfg[k]
        if isinstance(old, CfgNode):
            if not isinstance(v, dict):
                raise ConfigError(
                    f"{source}: {full} is a group of keys ({', '.join(sorted(old.keys())) or 'free-form'}), "
                    f"not a value; got {v!r}."
                )
            _merge_dict(old, v, source, root, full + ".")
        else:
            cfg[k] = _coerce(v, old, full, source)


def _parse_override(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        pass
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return parsed if isinstance(parsed, (list, dict)) else value


def overrides_to_dict(opts: Sequence[Any]) -> dict:
    """['A.B', '1', 'C', 'x'] -> {'A': {'B': 1}, 'C': 'x'}."""
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"command line: overrides come in KEY VALUE pairs; got an odd number ({len(opts)}): {opts}.")
    tree: dict = {}
    for key, value in zip(opts[0::2], opts[1::2]):
        if not isinstance(key, str) or not key or key.startswith("-"):
            raise ConfigError(f"command line: {key!r} is not a config key (expected e.g. SOLVER.BASE_LR).")
        if key == "_BASE_":
            raise ConfigError("command line: _BASE_ can only be used inside config files.")
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"command line: {key} sets a key below a value that was set before.")
        parsed = _parse_override(value)
        node[parts[-1]] = _WholeValue(parsed) if isinstance(parsed, dict) else parsed
    return tree


def _check_base_chain(path: str, chain: Sequence[str] = ()) -> None:
    """Follow the `_BASE_` files of `path` (one or a list, relative to the file that names them): a file that
    inherits from itself through the chain, or one that holds no keys (empty, or only comments), is one
    ConfigError naming the file(s)."""
    real = os.path.realpath(path)
    if real in chain:
        cycle = list(chain[chain.index(real) :]) + [real]
        raise ConfigError(
            "config files inherit from each other in a cycle (_BASE_): "
            + " -> ".join(os.path.relpath(p) for p in cycle)
            + ". Remove one of these _BASE_ keys."
        )
    if not os.path.isfile(path):
        return  # reported by the loader with the file that names it
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (yaml.YAMLError, OSError):
        return  # reported by the loader
    if data is None:
        named = f" (the _BASE_ of {os.path.relpath(chain[-1])})" if chain else ""
        raise ConfigError(
            f"config file {path}{named} is empty or holds only comments; a config file must hold a mapping of "
            "keys, e.g. '_BASE_: ../Kinetics/VIT_B_VTN.yaml' or 'SOLVER:' with 'BASE_LR: 0.1' below it."
        )
    bases = data.get("_BASE_") if isinstance(data, dict) else None
    for base in [bases] if isinstance(bases, str) else (bases or []):
        base = os.path.expanduser(str(base))
        if not os.path.isabs(base):
            base = os.path.join(os.path.dirname(path), base)
        _check_base_chain(base, list(chain) + [real])


def _read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist.")
    _check_base_chain(path)
    try:
        loaded = CfgNode.load_yaml_with_base(path, allow_unsafe=False)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    except (FileNotFoundError, AssertionError) as e:
        raise ConfigError(f"config file {path}: cannot resolve _BASE_: {e}") from e
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(loaded).__name__}.")
    return loaded


def load_config(
    cfg_file: Union[str, Iterable[str], None] = None,
    opts: Optional[Sequence[Any]] = None,
    freeze: bool = True,
    validate: bool = True,
) -> CfgNode:
    """Defaults <- each YAML file in order (with its `_BASE_` chain) <- `opts` overrides; validated, frozen."""
    cfg = get_cfg()
    files = [cfg_file] if isinstance(cfg_file, str) else list(cfg_file or [])
    for path in files:
        _merge_dict(cfg, _read_yaml(path), f"config file {path}", cfg)
    if opts:
        _merge_dict(cfg, overrides_to_dict(opts), "command line", cfg)
    if validate:
        validate_config(cfg)
    if freeze:
        cfg.freeze()
    return cfg


def dump_config(cfg: CfgNode, path: str) -> None:
    """Write the resolved config as YAML that `load_config(path)` reads back to an equal config (atomically)."""
    text = cfg.dump()
    atomic_write(path, lambda f: f.write(text), binary=False)
