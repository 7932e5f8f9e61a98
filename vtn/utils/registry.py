"""fvcore registries that name the valid choices, with close-match suggestions, when a name is unknown."""

import difflib
from collections.abc import Iterable

from fvcore.common.registry import Registry as _FvRegistry


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Candidates that look like `name` (case-insensitive), best first."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[h] for h in hits]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """' Did you mean X or Y?' or an empty string."""
    hits = close_matches(name, candidates)
    return f" Did you mean {' or '.join(repr(h) for h in hits)}?" if hits else ""


class Registry(_FvRegistry):
    """A name -> object map filled by decorators; `get` explains what is registered when a name is missing."""

    def names(self) -> list[str]:
        return sorted(self._obj_map)

    def register_as(self, name: str):
        """Decorator that registers under an explicit name (fvcore uses the object's __name__)."""

        def deco(obj):
            self._do_register(name, obj)
            return obj

        return deco

    def get(self, name: str):
        if name not in self._obj_map:
            raise KeyError(
                f"No {self._name} named {name!r}. Registered: {', '.join(self.names()) or 'none'}."
                + did_you_mean(name, self.names())
            )
        return self._obj_map[name]
