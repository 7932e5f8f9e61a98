"""Inference for the preflight: the first batches of the validation and test passes, timed, and an inference
pass projected from them."""

from collections.abc import Sequence
from itertools import islice

from vtn.config import passes_of, views_to_test
from vtn.datasets import build_loader
from vtn.engine.evaluator import run_inference
from vtn.launch.preflight.timing import timed


def test_pass_protocols(cfg) -> list[str]:
    """The protocol of every pass over the test data, in order: TEST.PROTOCOLS, a shuffled run of the shuffle
    ablation inside the pass of its unshuffled protocol (vtn.config.passes_of), a shuffled one alone in its own."""
    return [view.protocol for view, _ in passes_of(views_to_test(cfg))]


class _NextBatches:
    """A loader look-alike for `run_inference`: each pass gives the next batch of one iterator over `loader`."""

    def __init__(self, loader):
        self.dataset = loader.dataset
        self._iterator = iter(loader)

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        return islice(self._iterator, 1)


def inference_batch_times(model, loader, cfg, device, batches: int, desc: str) -> list[float]:
    """Seconds of each of the first `batches` batches of `run_inference` over `loader` (the first includes the
    loader's start-up)."""
    view = _NextBatches(loader)
    count = min(batches, len(loader))
    return [timed(device, lambda: run_inference(model, view, cfg, device, desc=desc))[0] for _ in range(count)]


def project_inference(times: Sequence[float], batches: int) -> float:
    """Seconds of an inference pass of `batches` batches from measured batch times: the first as it was (start-up
    included), the others at the last measured one's pace."""
    if not batches or not times:
        return 0.0
    return times[0] + times[-1] * (batches - 1)


def measure_evaluation(trainer, cfg, batches: int) -> tuple[list[float], dict]:
    """(seconds of the first `batches` validation batches, {test protocol: (seconds of its first batch, its
    number of batches)} when TEST.ENABLE)."""
    model, device, clone = trainer.model, trainer.device, trainer.cfg
    val = trainer.val_loader
    val_times = inference_batch_times(model, val, clone, device, batches, "val") if val is not None else []
    tests = {}
    if cfg.TEST.ENABLE:
        for protocol in dict.fromkeys(test_pass_protocols(clone)):
            loader = build_loader(clone, "test", protocol)
            tests[protocol] = (inference_batch_times(model, loader, clone, device, 1, f"test {protocol}"), len(loader))
    return val_times, tests
