"""Old module paths that moved in the split of the engine (issue 24) keep working, with a FutureWarning that names
the new place: `import vtn.engine.predict` gives the module `vtn.inference.predict` itself (the same object, so
registries and monkeypatches see one module). Installed by vtn/__init__.py; it imports a moved module only when
its old name is imported."""

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

MOVED_MODULES = {
    "vtn.engine.streaming": "vtn.inference.streaming",
    "vtn.engine.timeline": "vtn.inference.timeline",
    "vtn.engine.predict": "vtn.inference.predict",
    "vtn.engine.extract": "vtn.inference.extract",
    "vtn.engine.export": "vtn.inference.export",
    "vtn.engine.demo": "vtn.inference.demo",
    "vtn.engine.cli": "vtn.launch.cli",
    "vtn.engine.run": "vtn.launch.run",
    "vtn.engine.slurm": "vtn.launch.slurm",
    "vtn.engine.preflight": "vtn.launch.preflight",
    "vtn.datasets.resize": "vtn.preparation.resize",
    "vtn.datasets.check": "vtn.preparation.check",
    "vtn.datasets.decoder": "vtn.video.decoder",
}


class _MovedLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None  # a placeholder; exec_module puts the real module in its place

    def exec_module(self, module) -> None:
        new = MOVED_MODULES[module.__name__]
        warnings.warn(f"{module.__name__} moved to {new}: import it from there", FutureWarning, stacklevel=2)
        # the import system returns what sys.modules holds under the old name after this call
        sys.modules[module.__name__] = importlib.import_module(new)


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds only the old names of MOVED_MODULES; every other import goes on to the usual finders."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader())


def install() -> None:
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
