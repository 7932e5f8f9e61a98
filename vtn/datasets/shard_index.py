"""The index of a split written as tar shards (tools/make_shards.py): what the reader needs without opening a shard.

A split folder or prefix holds `shard-000000.tar`, `shard-000001.tar`, ... in the WebDataset layout (a sample is
the members `<key><ext>`, the video file's bytes, and `<key>.json`, its facts: label, class name, source path,
frame count, fps, duration), one `shard-NNNNNN.json` per finished shard (the same facts for its samples, with
each sample's byte offset and size in the tar), and `index.json`, written last from those:

    {"format": "vtn-shards", "version": 1, "split": ..., "classes": [...] or null, "num_classes": N,
     "fingerprint": ..., "listed": videos the split lists, "unreadable": [source paths left out],
     "missing": [listed source paths not found], "seed": shuffle seed,
     "shards": [{"name": "shard-000000.tar", "samples": n, "bytes": b}, ...],
     "samples": {"shard": [...], "offset": [...], "size": [...], "key": [...], "label": [...],
                 "source": [...], "frames": [...], "fps": [...], "duration": [...]}}

A sample's bytes are `offset` to `offset + size` of its shard: its tar headers and members, so a reader can fetch
one sample, or a run of consecutive samples, with one ranged request and start anywhere in a shard.
"""

import json
from dataclasses import dataclass, field
from typing import Optional

FORMAT = "vtn-shards"
VERSION = 1
INDEX_NAME = "index.json"
SAMPLE_FIELDS = ("shard", "offset", "size", "key", "label", "source", "frames", "fps", "duration")


def shard_name(number: int) -> str:
    return f"shard-{number:06d}.tar"


def shard_facts_name(number: int) -> str:
    """The sidecar of a finished shard: its samples' facts (written after the shard is in place)."""
    return f"shard-{number:06d}.json"


@dataclass
class ShardIndex:
    """index.json of one split; `samples` is columnar: `samples[field][i]` for sample i (in shard order)."""

    split: str
    classes: Optional[list[str]]
    num_classes: int
    fingerprint: str
    listed: int
    seed: int
    shards: list[dict] = field(default_factory=list)
    samples: dict = field(default_factory=lambda: {k: [] for k in SAMPLE_FIELDS})
    unreadable: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return len(self.samples["key"])

    def to_json(self) -> str:
        data = {"format": FORMAT, "version": VERSION}
        data.update(
            split=self.split,
            classes=self.classes,
            num_classes=self.num_classes,
            fingerprint=self.fingerprint,
            listed=self.listed,
            seed=self.seed,
            unreadable=self.unreadable,
            missing=self.missing,
            shards=self.shards,
            samples=self.samples,
            **self.extra,
        )
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, where: str) -> "ShardIndex":
        """Parse index.json; a file that is not a vtn shard index, or of a newer version, is a clear ValueError."""
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ValueError(f"{where} is not JSON ({e})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f'{where} is not an index of tools/make_shards.py (no "format": "{FORMAT}")')
        if int(data.get("version", 0)) > VERSION:
            raise ValueError(f"{where} is version {data['version']} of the shard index; this vtn reads {VERSION}")
        missing = [k for k in SAMPLE_FIELDS if k not in data.get("samples", {})]
        if missing:
            raise ValueError(f"{where}: the samples table lacks {', '.join(missing)}")
        known = {"format", "version", "split", "classes", "num_classes", "fingerprint", "listed", "seed"}
        known |= {"shards", "samples", "unreadable", "missing"}
        return cls(
            split=data.get("split", ""),
            classes=data.get("classes"),
            num_classes=int(data.get("num_classes", 0)),
            fingerprint=data.get("fingerprint", ""),
            listed=int(data.get("listed", 0)),
            seed=int(data.get("seed", 0)),
            shards=list(data.get("shards", [])),
            samples=data["samples"],
            unreadable=list(data.get("unreadable", [])),
            missing=list(data.get("missing", [])),
            extra={k: v for k, v in data.items() if k not in known},
        )
