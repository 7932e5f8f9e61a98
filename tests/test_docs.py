"""The documented commands cannot rot: every `python tools/...` and `python benchmarks/...` command in the docs
names a script that exists and parses with that script's own command line, and (for tools that take a config)
loads its config files and overrides; a doc of the list that is missing fails. Paths to data and checkpoints are
not opened: the commands are checked, not run (the tools themselves are run at a tiny size by the tests under
tests/tools/ and tests/engine/, and the README's demo by tests/test_demo.py)."""

import os
import re
import shlex

import pytest

from tests.helpers import REPO, code_lines, load_tool
from vtn.launch.cli import config_from_args, parse

DOCS = ["README.md", "INSTALL.md", "GETTING_STARTED.md", "projects/vtn/README.md", "benchmarks/README.md"]
SCRIPT = re.compile(r"(?:^|\s)((?:tools|benchmarks)/[\w/]+\.py)(?=\s|$)")


def documented_commands():
    found = []
    for doc in DOCS:
        path = os.path.join(REPO, doc)
        assert os.path.isfile(path), f"{doc} is gone: the docs test reads it (update DOCS if it moved)"
        for line in code_lines(open(path, encoding="utf-8").read()):
            if line.startswith("#"):
                continue
            for part in line.split("&&"):
                m = SCRIPT.search(part)
                if m and re.search(r"\b(python|torchrun)\b", part[: m.start() + 1]):
                    found.append((doc, m.group(1), part[m.end() :], part[: m.start()]))
    return found


LAUNCHES = documented_commands()
COMMANDS = [(doc, script, rest) for doc, script, rest, _ in LAUNCHES]


def argv_of(rest):
    rest = re.sub(r"\[KEY VALUE \.\.\.\]", "", rest)
    rest = re.sub(r"\[(--[^\]]+)\]", r"\1", rest)  # optional flags written as [--frames 16]
    rest = re.sub(r"<[^>]*>", "PLACEHOLDER", rest)
    rest = rest.replace("...", "")
    return shlex.split(rest, comments=True)


def test_the_docs_document_commands():
    tools = {script for _, script, _ in COMMANDS}
    # the main job, the tools a researcher runs daily and a benchmark: the scan above really finds them
    assert {"tools/run_net.py", "tools/demo_net.py", "tools/model_info.py", "tools/submit.py"} <= tools
    assert len(COMMANDS) >= 25


@pytest.mark.parametrize("doc, script, rest", COMMANDS, ids=[f"{d}:{s}:{i}" for i, (d, s, _) in enumerate(COMMANDS)])
def test_documented_command_parses_and_its_config_loads(doc, script, rest):
    assert os.path.isfile(os.path.join(REPO, script)), f"{doc} documents {script}, which does not exist"
    argv = argv_of(rest)
    tool = load_tool(script)
    assert hasattr(tool, "build_parser"), f"{script} has no build_parser()"
    parser = tool.build_parser()
    takes_config = parser.get_default("cfg_files") is not None  # the shared `--cfg FILE [KEY VALUE ...]`
    if not takes_config:  # plot_curves and the benchmarks: their own flags only
        parser.parse_args(argv)
        return
    args = parse(parser, argv)
    for cfg_file in args.cfg_files:
        assert os.path.isfile(os.path.join(REPO, cfg_file)), f"{doc}: {script} --cfg {cfg_file}: no such file"
    if args.imports:
        return  # the files a command imports are the examples of its page, which tests/test_extending.py runs
    if args.cfg_files or args.all_opts:
        cwd = os.getcwd()
        os.chdir(REPO)
        try:
            config_from_args(args)  # unknown keys, bad values and odd override lists fail here
        finally:
            os.chdir(cwd)


def launched_processes(prefix, script, args, cfg):
    """How many processes a documented command starts: torchrun's --nproc_per_node x --nnodes, submit.py's
    --nodes x --gpus-per-node, else NUM_GPUS x NUM_SHARDS of the config (with --num_shards applied)."""
    from vtn.config import world_size

    words = shlex.split(prefix)
    if "torchrun" in words:

        def flag(name):
            return int(words[words.index(name) + 1]) if name in words else 1

        return flag("--nproc_per_node") * flag("--nnodes")
    if script == "tools/submit.py":
        return args.nodes * max(1, args.gpus_per_node)
    return world_size(cfg)


@pytest.mark.parametrize(
    "doc, script, rest, prefix", LAUNCHES, ids=[f"{d}:{s}:{i}" for i, (d, s, _, _) in enumerate(LAUNCHES)]
)
def test_every_documented_launch_fits_its_number_of_processes(doc, script, rest, prefix):
    """The batches of a documented command split over the processes it launches (the 16-GPU lines included):
    what run_net checks at start-up, for torchrun's and SLURM's worlds too."""
    from vtn.config import check_world
    from vtn.launch.cli import launch_overrides

    parser = load_tool(script).build_parser()
    if parser.get_default("cfg_files") is None:
        return  # no config
    args = parse(parser, argv_of(rest))
    if args.imports:
        return
    extra = launch_overrides(args) if hasattr(args, "num_shards") else []
    if script == "tools/submit.py":
        extra = ["NUM_GPUS", args.gpus_per_node, "NUM_SHARDS", args.nodes]
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        cfg = config_from_args(args, extra)  # NUM_GPUS x NUM_SHARDS is checked here
    finally:
        os.chdir(cwd)
    check_world(cfg, launched_processes(prefix, script, args, cfg))


def test_the_documented_16_gpu_launches_are_found():
    worlds = []
    for _doc, script, rest, prefix in LAUNCHES:
        if script in ("tools/run_net.py", "tools/submit.py") and (
            "--num_shards" in rest or "--nodes" in rest or "--nnodes" in prefix
        ):
            worlds.append(script)
    assert worlds.count("tools/run_net.py") >= 3 and "tools/submit.py" in worlds, worlds


def test_every_tool_exposes_its_command_line():
    for name in sorted(os.listdir(os.path.join(REPO, "tools"))):
        if name.endswith(".py"):
            tool = load_tool(os.path.join("tools", name))
            assert callable(getattr(tool, "build_parser", None)), f"tools/{name} has no build_parser()"


# keys two documented commands of one run may set differently (where the data lies, how many processes, which
# of its checkpoints a test-only command reads)
SAME_RUN_KEYS = (
    "DATA.PATH_TO_DATA_DIR",
    "DATA.PATH_PREFIX",
    "NUM_GPUS",
    "NUM_SHARDS",
    "SHARD_ID",
    "TRAIN.ENABLE",
    "TEST.CHECKPOINT_FILE_PATH",
    "OUTPUT_DIR",
)


def test_every_documented_run_writes_to_its_own_output_dir():
    """Two documented run_net commands that share an OUTPUT_DIR must describe the same run: otherwise the second
    would find the first one's checkpoints (and, before the config check, resume them silently)."""
    from vtn.engine.output_dir import config_differences

    runs = {}
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        for doc, script, rest in COMMANDS:
            if script != "tools/run_net.py":
                continue
            args = parse(load_tool(script).build_parser(), argv_of(rest))
            if args.imports:
                continue  # an extension example (tests/test_extending.py), in its own output/extend/ folder
            cfg = config_from_args(args)
            runs.setdefault(os.path.normpath(cfg.OUTPUT_DIR), []).append((f"{doc}: {rest.strip()[:90]}", cfg))
    finally:
        os.chdir(cwd)
    assert len(runs) >= 15
    clashes = []
    for folder, commands in runs.items():
        first_name, first = commands[0]
        for name, cfg in commands[1:]:
            # a command that continues the run with changes accepts them by name (TRAIN.RESUME_ALLOW_CHANGED)
            accepted = tuple(cfg.TRAIN.RESUME_ALLOW_CHANGED) + ("TRAIN.RESUME_ALLOW_CHANGED",) * bool(
                cfg.TRAIN.RESUME_ALLOW_CHANGED
            )
            diffs = config_differences(first.dump(), cfg, ignore=SAME_RUN_KEYS + accepted)
            if diffs:
                clashes.append(f"{folder}: '{first_name}' and '{name}' differ in {sorted(diffs)}")
    assert not clashes, "\n".join(clashes)


def registry_rows() -> list[tuple[str, str, str]]:
    """(registry names, module, config keys) of the table in GETTING_STARTED's "Extending vtn"."""
    text = open(os.path.join(REPO, "GETTING_STARTED.md")).read()
    table = text[text.index("| registry | module | config key |") :].split("\n\n", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    return [(names, module.strip("`"), keys) for names, module, keys in rows]


def test_the_registry_table_names_where_each_registry_lives_and_its_keys():
    import importlib

    from vtn.config import get_cfg
    from vtn.utils.registry import Registry

    rows = registry_rows()
    assert len(rows) >= 9
    cfg = get_cfg()
    for names, module, keys in rows:
        for name in re.findall(r"`(\w+_REGISTRY)`", names):
            assert isinstance(getattr(importlib.import_module(module), name), Registry), (name, module)
        for key in re.findall(r"`([A-Z_.]+)`", keys):
            node = cfg
            for part in key.split("."):
                node = getattr(node, part)  # an AttributeError names a key the config does not have
