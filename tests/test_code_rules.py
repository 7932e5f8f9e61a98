"""The house rules of vtn/ beside the layers (tests/test_layers.py): no module over 500 lines, no function over 60,
no package over a quarter of the code, and no code that writes a private attribute (`_name`) of an object other
than its own. They keep the house one a contributor can walk through; a module or function that outgrows them is
split by what it does, not by line count."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "vtn"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
MAX_PACKAGE_SHARE = 0.25


def package_of(path: pathlib.Path) -> str:
    """The first-level package (or top-level module) of vtn that a file belongs to."""
    parts = path.relative_to(ROOT).parts
    return parts[0] if len(parts) > 1 else path.stem


def test_no_module_is_longer_than_the_limit():
    sizes = {f"vtn/{p.relative_to(ROOT)}": len(p.read_text().splitlines()) for p in ROOT.rglob("*.py")}
    long = {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by job): {long}"


def test_no_function_is_longer_than_the_limit():
    long = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"vtn/{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_no_package_holds_more_than_a_quarter_of_the_code():
    lines: dict[str, int] = {}
    for path in ROOT.rglob("*.py"):
        package = package_of(path)
        lines[package] = lines.get(package, 0) + len(path.read_text().splitlines())
    total = sum(lines.values())
    biggest = max(lines, key=lines.get)
    assert lines[biggest] <= MAX_PACKAGE_SHARE * total, f"vtn/{biggest} holds {lines[biggest]} of {total} lines"


# (file, attribute written): the exceptions, each with its reason
PRIVATE_WRITES_ALLOWED = {
    # transformers' Longformer layers take their checkpoint function only through this attribute (the public
    # `gradient_checkpointing_enable` is on PreTrainedModel, which the bare encoder that vtn wraps is not)
    ("models/temporal_encoders/longformer_hf.py", "layer._gradient_checkpointing_func"),
}


def private_writes(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, target) of each assignment to `x._name` where x is not self or cls, and each setattr(x, "_name")."""
    found = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for sub in ast.walk(target):
                private = isinstance(sub, ast.Attribute) and sub.attr.startswith("_") and not sub.attr.startswith("__")
                if private and not (isinstance(sub.value, ast.Name) and sub.value.id in ("self", "cls")):
                    found.append((node.lineno, ast.unparse(sub)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and str(name.value).startswith("_"):
                found.append((node.lineno, ast.unparse(node)))
    return found


def test_no_code_writes_a_private_attribute_of_another_object():
    writes = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for line, target in private_writes(ast.parse(path.read_text())):
            if (rel, target) not in PRIVATE_WRITES_ALLOWED:
                writes.append(f"vtn/{rel}:{line} writes {target}")
    assert not writes, "private attributes of other objects written (add a public method instead):\n" + "\n".join(
        writes
    )


def test_the_private_write_check_sees_a_write_and_a_setattr():
    tree = ast.parse("def f(trainer):\n    trainer._tick = 1\n    setattr(trainer, '_batches', [])\n    self._ok = 2\n")
    assert [target for _, target in private_writes(tree)] == ["trainer._tick", "setattr(trainer, '_batches', [])"]
