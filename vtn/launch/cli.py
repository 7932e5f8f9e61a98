"""The command line shared by every tool: `--cfg FILE [--cfg FILE2 ...] [KEY VALUE ...] [--opts KEY VALUE ...]`,
and `run_main`, the one way every tool ends on a user error.

This module is light (no torch): a tool's `--help` and the errors of its command line come at once. Loading a
config (`config_from_args`) first reads the files and overrides alone (missing files, YAML, unknown keys and
types), then imports every package whose registries or checks the config is validated against (datasets,
models, the engine's optimizers, LR policies and losses), so a bad value fails before any work starts.
"""

import argparse
import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Callable, Optional

from vtn.config import get_cfg, load_config
from vtn.engine.components import register_components
from vtn.utils.errors import ConfigError, UserError

USER_ERROR_STATUS = 2
INTERRUPTED_STATUS = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def run_main(tool: str, body: Callable[[], Optional[int]], on_interrupt: str = "") -> None:
    """Run a tool's `body`. A user error (a bad config, file, checkpoint, dataset or machine: `UserError`) ends the
    tool with one line, `<tool>: error: <what and what is expected>`, on stderr and exit status 2; the traceback
    shows only with VTN_TRACEBACK=1. Ctrl-C ends it with one line (and `on_interrupt`, e.g. how to resume) and
    status 130. A non-zero int returned by `body` is the exit status."""
    try:
        status = body()
    except KeyboardInterrupt:
        if os.environ.get("VTN_TRACEBACK"):
            raise
        print(f"{tool}: interrupted" + (f"; {on_interrupt}" if on_interrupt else ""), file=sys.stderr)
        sys.exit(INTERRUPTED_STATUS)
    except UserError as e:
        if os.environ.get("VTN_TRACEBACK"):
            raise
        message = " ".join(str(e).split("\n"))
        print(f"{tool}: error: {message} (set VTN_TRACEBACK=1 for the traceback)", file=sys.stderr)
        sys.exit(USER_ERROR_STATUS)
    if status:
        sys.exit(status)


def add_splits_argument(parser: argparse.ArgumentParser, splits: Sequence[str], verb: str) -> None:
    """`--splits`, the same in every tool: one comma-separated value (`--splits train,val`)."""
    parser.add_argument(
        "--splits",
        default=",".join(splits),
        metavar="SPLIT[,SPLIT...]",
        help=f"The splits to {verb}, comma-separated (default: {','.join(splits)}).",
    )


def parse_splits(parser: argparse.ArgumentParser, args: argparse.Namespace, splits: Sequence[str]) -> list[str]:
    """The splits of `--splits` in order; an unknown one, or splits given space-separated, is a usage error."""
    if args.all_opts and args.all_opts[0] in splits:
        parser.error(f"--splits takes one comma-separated value, e.g. --splits {args.splits},{args.all_opts[0]}")
    chosen = [x.strip() for x in args.splits.split(",") if x.strip()]
    for name in chosen:
        if name not in splits:
            parser.error(f"--splits: {name!r} is not one of {', '.join(splits)}")
    return chosen


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """PySlowFast's multi-machine flags, as tools/run_net.py takes them (see `launch_overrides`)."""
    parser.add_argument("--num_shards", type=int, default=None, help="Machines in the job (sets NUM_SHARDS).")
    parser.add_argument("--shard_id", type=int, default=None, help="Index of this machine (sets SHARD_ID).")
    parser.add_argument(
        "--init_method",
        default="tcp://localhost:9999",
        help="Rendezvous address of a multi-machine job, e.g. tcp://10.0.0.1:9999.",
    )


def launch_overrides(args: argparse.Namespace) -> list:
    """The config overrides that --num_shards and --shard_id stand for."""
    extra = []
    if args.num_shards is not None:
        extra += ["NUM_SHARDS", args.num_shards]
    if args.shard_id is not None:
        extra += ["SHARD_ID", args.shard_id]
    return extra


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--cfg",
        dest="cfg_files",
        action="append",
        default=[],
        metavar="FILE",
        help="A YAML config file; repeat to merge several in order (later files win).",
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="A Python module or .py file to import first, e.g. a project's registered backbone or dataset; repeat "
        "for several.",
    )
    parser.add_argument(
        "--opts", nargs=argparse.REMAINDER, default=[], help="Config overrides as KEY VALUE pairs (also accepted bare)."
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY VALUE", help="Config overrides, e.g. SOLVER.BASE_LR 0.01.")
    return parser


def parse(
    parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None, lists: Sequence[str] = ()
) -> argparse.Namespace:
    """parse_intermixed_args, so that overrides may sit before or after the flags. `lists`: the destinations of
    options that take several values (`--input a.mp4 b.mp4`); such an option ends before the first value that is a
    config key (`--input a.mp4 TEST.FULL_VIDEO_FRAMES 16` is one input and one override), unless a file of that
    name exists; the override keeps its place among the others (a later one wins)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if lists:
        flags = {flag for action in parser._actions if action.dest in lists for flag in action.option_strings}
        if END_OF_VALUES not in parser._option_string_actions:
            parser.add_argument(END_OF_VALUES, action="store_true", help=argparse.SUPPRESS)
        words, argv, inside = argv, [], False
        for word in words:
            if word.startswith("-"):
                inside = word in flags
            elif inside and is_config_key(word) and not os.path.exists(word):
                argv.append(END_OF_VALUES)
                inside = False
            argv.append(word)
    args = parser.parse_intermixed_args(argv)
    args.all_opts = list(args.overrides) + list(args.opts or [])
    return args


END_OF_VALUES = "--end-of-values"  # ends an option of several values where an override begins (see `parse`)


def is_config_key(word: str) -> bool:
    """Whether `word` names a key or group of the config (`TEST.FULL_VIDEO_FRAMES`, `SOLVER`)."""
    node = _default_config()
    for part in word.split("."):
        if not hasattr(node, "get") or part not in node:
            return False
        node = node[part]
    return True


@functools.lru_cache(maxsize=1)
def _default_config():
    return get_cfg()


def import_extensions(imports: Sequence[str]) -> None:
    """Import a project's modules (names on the Python path, or .py files) so that what they register (a
    backbone, dataset, encoder, loss, LR policy, ...) is known before a config is loaded and checked."""
    for name in imports:
        try:
            if name.endswith(".py"):
                spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(name))[0], name)
                if spec is None or not os.path.isfile(name):
                    raise FileNotFoundError(name)
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(name)
        except (ImportError, FileNotFoundError) as e:
            raise ConfigError(
                f"--import {name}: cannot be imported ({e.__class__.__name__}: {e}); give a module on the Python "
                "path or the path of a .py file"
            ) from e


def config_from_args(args: argparse.Namespace, extra_opts: Sequence = ()):
    """Load the config named by `--cfg` with the overrides of the command line, then `extra_opts` on top: read
    first without the registries (a missing file, bad YAML, an unknown key or a wrong type fails at once), then
    with every package's checks, after the modules of `--import` (which may register names)."""
    opts = list(args.all_opts) + list(extra_opts)
    imports = getattr(args, "imports", [])
    if not imports:
        load_config(args.cfg_files, opts, validate=False)
    register_components()
    import_extensions(imports)
    return load_config(args.cfg_files, opts)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return value
