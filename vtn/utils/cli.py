"""The command line shared by every tool: `--cfg FILE [--cfg FILE2 ...] [KEY VALUE ...] [--opts KEY VALUE ...]`."""
import argparse
from typing import Optional, Sequence

from vtn.config import load_config


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--cfg",
        dest="cfg_files",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML config file; repeat to merge several in order (later files win)",
    )
    parser.add_argument(
        "--opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE pairs (also accepted bare)"
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY VALUE", help="config overrides, e.g. SOLVER.BASE_LR 0.01")
    return parser


def parse(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """parse_intermixed_args, so that overrides may sit before or after the flags."""
    args = parser.parse_intermixed_args(argv)
    args.all_opts = list(args.overrides) + list(args.opts or [])
    return args


def config_from_args(args: argparse.Namespace, extra_opts: Sequence = ()):
    """Load the config named by `--cfg` with the overrides of the command line, then `extra_opts` on top."""
    return load_config(args.cfg_files, list(args.all_opts) + list(extra_opts))
