"""The layer rules of vtn/ (DESIGN.md: imports point down), held against the code.

Every import of every module is read with `ast`, those inside functions and classes too, so that a
function-level import cannot hide an upward dependency. Layers, lowest first:

    utils -> storage -> config -> video -> datasets | models | visualization -> preparation -> engine
        -> inference -> launch

A package may import its own modules and the packages its rule allows; `vtn.api` is the facade for users and
nothing in vtn/ imports it.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "vtn"

# package -> the vtn packages it may import (besides itself), and why a break matters
ALLOWED = {
    "utils": (set(), "utils imports nothing of vtn"),
    "storage": ({"utils"}, "reading local and remote files knows nothing of configs, videos or datasets"),
    "config": ({"utils"}, "config imports only vtn.utils"),
    "video": (
        {"utils", "storage", "config"},
        "reading and writing videos knows nothing of datasets, models or the engine",
    ),
    "datasets": (
        {"utils", "storage", "config", "video"},
        "datasets never import models, engine, inference, launch or preparation",
    ),
    "models": ({"utils", "config"}, "models never import datasets, engine, inference, launch or preparation"),
    "visualization": ({"utils", "config", "video"}, "visualization draws; it never imports datasets or the engine"),
    "preparation": (
        {"utils", "storage", "config", "video", "datasets"},
        "data preparation sits on the data packages only",
    ),
    "engine": (
        {"utils", "storage", "config", "video", "datasets", "models", "visualization", "preparation"},
        "the engine core never imports inference or launch",
    ),
    "inference": (
        {"utils", "storage", "config", "video", "datasets", "models", "visualization", "preparation", "engine"},
        "inference never imports launch",
    ),
    "launch": (
        {
            "utils",
            "storage",
            "config",
            "video",
            "datasets",
            "models",
            "visualization",
            "preparation",
            "engine",
            "inference",
        },
        "launch is the top of the package",
    ),
    # the package's own namespace: `vtn.load` from inference, the finder of moved module paths
    "__init__": ({"compat", "inference"}, "vtn/__init__.py exposes vtn.load"),
    "compat": (set(), "the moved-paths finder imports moved modules by name only"),
    "api": ({"inference"}, "vtn.api is a facade over vtn.inference"),
}


def module_name(path: pathlib.Path, root: pathlib.Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def vtn_imports(path: pathlib.Path, root: pathlib.Path = ROOT) -> list[tuple[int, str]]:
    """(line, module) of every import of a vtn module in the file, wherever it stands; `from vtn.x import y`
    counts as `vtn.x.y` so that `from vtn import api` is seen as the import of vtn.api."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's package
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return [(line, name) for line, name in found if name == "vtn" or name.startswith("vtn.")]


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def is_module(name: str, root: pathlib.Path = ROOT) -> bool:
    path = root.parent / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_package(name: str) -> str:
    """The first-level package (or top-level module) of vtn that an import reaches."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_breaks(root: pathlib.Path = ROOT) -> list[str]:
    breaks = []
    for path in sorted(root.rglob("*.py")):
        own = layer_of(module_name(path, root))
        allowed, why = ALLOWED.get(own, (None, f"vtn/{own} is a package the layer rules do not know: add it"))
        for line, name in vtn_imports(path, root):
            target = imported_package(name)
            where = f"{path.relative_to(root.parent)}:{line} imports {name}"
            if target == "api" and own != "__init__":
                breaks.append(f"{where}: nothing in vtn/ imports vtn.api (it is the users' facade)")
            elif allowed is None:
                breaks.append(f"{where}: {why}")
            elif target != own and target not in allowed and is_module(f"vtn.{target}", root):
                breaks.append(f"{where}: {why}")
    return breaks


def test_every_import_points_down_the_layers():
    breaks = layer_breaks()
    assert not breaks, "layer rules broken:\n" + "\n".join(breaks)


def test_the_rules_know_every_package():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in ROOT.glob("*.py")}
    assert packages | modules == set(ALLOWED)


@pytest.mark.parametrize(
    "where, line, rule",
    [
        ("engine/trainer.py", "from vtn.inference.predict import run_predict", "never imports inference or launch"),
        ("datasets/kinetics.py", "import vtn.models.vtn", "datasets never import models"),
        ("models/heads.py", "from vtn.datasets import sampling", "models never import datasets"),
        ("video/writer.py", "from vtn.datasets.files import VIDEO_EXTENSIONS", "knows nothing of datasets"),
        ("config/defaults.py", "from vtn.datasets.sampling import PROTOCOLS", "config imports only vtn.utils"),
        ("utils/rng.py", "from vtn.config import get_cfg", "utils imports nothing of vtn"),
        ("inference/predict.py", "from vtn import api", "nothing in vtn/ imports vtn.api"),
        ("engine/tester.py", "from vtn.launch import cli", "never imports inference or launch"),
    ],
)
def test_a_forbidden_import_is_named_with_its_file_and_line(tmp_path, where, line, rule):
    """Each rule fails on a planted import, also when it hides inside a function, with the file, the line and
    the import in the message."""
    copy = tmp_path / "vtn"
    for path in ROOT.rglob("*.py"):
        target = copy / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    planted = copy / where
    source = planted.read_text()
    planted.write_text(source + f"\n\ndef _planted():\n    {line}\n")
    breaks = layer_breaks(copy)
    lineno = len(source.splitlines()) + 4
    assert len(breaks) == 1, breaks
    assert breaks[0].startswith(f"vtn/{where}:{lineno} imports vtn.") and rule in breaks[0]
