"""Old import paths from before the split of the engine (issue 24) keep working or name the new place."""

import importlib
import sys

import pytest

from vtn.compat import MOVED_MODULES


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_an_old_module_path_is_the_moved_module_itself_with_a_warning(old, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(FutureWarning, match=f"{old} moved to {MOVED_MODULES[old]}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED_MODULES[old])  # one module: registries, monkeypatches agree


def test_from_the_old_package_import_the_old_name(monkeypatch):
    import vtn.engine

    monkeypatch.delitem(sys.modules, "vtn.engine.predict", raising=False)
    monkeypatch.delattr(vtn.engine, "predict", raising=False)
    with pytest.warns(FutureWarning):
        from vtn.engine import predict
    from vtn.inference import predict as moved

    assert predict is moved


def test_a_name_that_moved_out_of_a_module_is_one_line_naming_its_new_place():
    with pytest.raises(ImportError, match=r"launch_job moved: import it from vtn\.launch\.processes$"):
        from vtn.engine.distributed import launch_job  # noqa: F401


def test_an_unknown_module_is_still_an_ordinary_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("vtn.engine.no_such_module")
