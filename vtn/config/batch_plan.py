"""The training batch of a run on the processes it actually has.

A config's TRAIN.BATCH_SIZE is the global batch of one iteration (summed over processes), TRAIN.ACCUMULATION_STEPS
the iterations per optimizer step, and its learning rates fit the optimizer step's batch. Configs are written for
a machine (the Kinetics ones for 8 GPUs): SOLVER.REFERENCE_WORLD_SIZE says for how many processes, and on another
number `batch_plan` adapts the run so that it still follows the recipe:

- `keep_global` (default): the clips per optimizer step and the LRs stay. Each process keeps its share of the
  reference (TRAIN.BATCH_SIZE / REFERENCE_WORLD_SIZE) and the accumulation steps make up the difference: 2 GPUs
  for an 8-GPU config accumulate 4 iterations; 16 GPUs for an 8-GPU config with 2 accumulation steps need none.
  Where the shares cannot be kept, each process takes the optimizer step's batch / processes in one iteration.
- `linear`: each process keeps its share and the accumulation steps, so the optimizer step's batch follows the
  processes, and every LR is scaled by processes / REFERENCE_WORLD_SIZE (the linear scaling rule).

The LR schedule is in epochs either way, so warm-up and steps fall at the same epochs.

TEST.BATCH_SIZE is a global batch too: with SOLVER.REFERENCE_WORLD_SIZE set, each process keeps its share of it
(the memory per GPU the config was written for) on any number of processes; without, it splits over the run's
processes. `check_world` runs both checks for a number of processes: at config load for NUM_GPUS x NUM_SHARDS,
at launch for torchrun's WORLD_SIZE.
"""

from dataclasses import dataclass

from vtn.utils.errors import ConfigError

SCALE_RULES = ("keep_global", "linear")


@dataclass(frozen=True)
class BatchPlan:
    per_process: int  # clips per process per iteration
    processes: int
    accumulation: int  # iterations per optimizer step
    lr_scale: float  # multiplies every LR of the schedule
    note: str  # what was adapted, for the log; "" when the config is used as written

    @property
    def iteration_batch(self) -> int:
        return self.per_process * self.processes

    @property
    def step_batch(self) -> int:
        return self.iteration_batch * self.accumulation


def batch_plan(cfg, processes: int) -> BatchPlan:
    """The batch of a training run of `cfg` on `processes` processes; a ConfigError when it cannot be done."""
    batch, accumulation = cfg.TRAIN.BATCH_SIZE, cfg.TRAIN.ACCUMULATION_STEPS
    reference, rule = cfg.SOLVER.REFERENCE_WORLD_SIZE, cfg.SOLVER.SCALE_RULE
    if not reference or reference == processes:
        if batch % processes:
            raise ConfigError(
                f"TRAIN.BATCH_SIZE = {batch} is not allowed: expected a positive multiple of the number of processes "
                f"(NUM_GPUS x NUM_SHARDS = {processes}); or set SOLVER.REFERENCE_WORLD_SIZE to the number of "
                "processes the config was written for"
            )
        return BatchPlan(batch // processes, processes, accumulation, 1.0, "")
    if batch % reference:
        raise ConfigError(
            f"TRAIN.BATCH_SIZE = {batch} is not a multiple of SOLVER.REFERENCE_WORLD_SIZE = {reference}: the config's "
            "batch must split evenly over the processes it was written for (SOLVER.REFERENCE_WORLD_SIZE 0 uses "
            "TRAIN.BATCH_SIZE as it is on this run's processes)"
        )
    share = batch // reference
    written = f"SOLVER.REFERENCE_WORLD_SIZE {reference}, this run has {processes} processes"
    if rule == "linear":
        scale = processes / reference
        return BatchPlan(
            share,
            processes,
            accumulation,
            scale,
            f"{written}: {share} clips per process x {accumulation} accumulation steps = "
            f"{share * processes * accumulation} clips per optimizer step (the config: {batch * accumulation}), "
            f"every LR x {scale:g} "
            "(SOLVER.SCALE_RULE linear)",
        )
    step = batch * accumulation
    if step % (share * processes) == 0:
        plan = BatchPlan(share, processes, step // (share * processes), 1.0, "")
    elif step % processes == 0:
        plan = BatchPlan(step // processes, processes, 1, 1.0, "")
    else:
        raise ConfigError(
            f"{written}: the global batch of {step} clips per optimizer step (TRAIN.BATCH_SIZE x "
            f"TRAIN.ACCUMULATION_STEPS) cannot be split over {processes} processes; use a number of processes "
            f"that divides it, or SOLVER.SCALE_RULE linear"
        )
    note = (
        f"{written}: {plan.per_process} clips per process x {plan.accumulation} accumulation steps keep the global "
        f"batch of {step} clips per optimizer step and the LRs (SOLVER.SCALE_RULE keep_global)"
    )
    return BatchPlan(plan.per_process, processes, plan.accumulation, 1.0, note)


def eval_batch_per_process(cfg, processes: int) -> int:
    """Views per process in a validation or test batch (see the module docstring); a ConfigError when
    TEST.BATCH_SIZE cannot be shared out."""
    batch, reference = cfg.TEST.BATCH_SIZE, cfg.SOLVER.REFERENCE_WORLD_SIZE
    if batch < 1:
        raise ConfigError(f"TEST.BATCH_SIZE = {batch} is not allowed: expected an integer >= 1")
    if reference:
        if batch % reference:
            raise ConfigError(
                f"TEST.BATCH_SIZE = {batch} is not a multiple of SOLVER.REFERENCE_WORLD_SIZE = {reference}: the "
                "config's batch must split evenly over the processes it was written for"
            )
        return batch // reference
    if batch % processes:
        raise ConfigError(
            f"TEST.BATCH_SIZE = {batch} is not allowed: expected a positive multiple of the number of processes "
            f"({processes}); or set SOLVER.REFERENCE_WORLD_SIZE to the number of processes the config was written "
            "for, so that each process keeps its share"
        )
    return batch // processes


def check_world(cfg, processes: int) -> None:
    """The training and test batches of `cfg` can be shared out over `processes` processes (ConfigError)."""
    batch_plan(cfg, processes)
    eval_batch_per_process(cfg, processes)
