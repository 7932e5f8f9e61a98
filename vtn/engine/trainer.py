"""The VTN trainer: resume or fine-tune, then the training loop of train_loop.py with the hooks of hooks.py
(per-iteration LR, metrics and logs, periodic and best checkpoints, validation); the step itself holds mixed
precision, accumulation, clipping, EMA, and a stop with a clear error on a non-finite loss."""

import functools
import logging
import os
import time
from contextlib import nullcontext
from typing import Callable, Optional

import torch

from vtn.config import batch_plan
from vtn.datasets import build_loader, loader_state, restore_loader_state, shuffle_dataset
from vtn.datasets.mixup import build_mixup
from vtn.engine import distributed as du
from vtn.engine.agreement import check_ranks_agree
from vtn.engine.checkpoint import (
    BEST_NAME,
    CheckpointError,
    capture_rng_state,
    checkpoint_dir,
    checkpoint_name,
    find_resume_checkpoint,
    list_checkpoints,
    load_checkpoint_file,
    load_weights,
    model_state_from,
    prune_checkpoints,
    restore_rng_state,
    rng_state_of_rank,
    save_checkpoint,
)
from vtn.engine.convert import to_vtn_state
from vtn.engine.distributed import unwrap
from vtn.engine.ema import ModelEMA
from vtn.engine.evaluator import autocast_for, dataset_metrics, run_inference
from vtn.engine.hooks import HOOK_REGISTRY, EvalHook, LRScheduler, MetricsWriter, PeriodicCheckpointer
from vtn.engine.inputs import model_inputs
from vtn.engine.losses import build_loss
from vtn.engine.lr_policy import get_lr_at_epoch, set_lr, unreached_steps
from vtn.engine.optimizer import build_optimizer
from vtn.engine.output_dir import check_same_config
from vtn.engine.train_loop import StepTimings, TrainerBase
from vtn.engine.worker_watch import LOADER_ERRORS, raise_if_worker_died
from vtn.models import build_model
from vtn.utils.errors import DiskFullError, OutputWriteError, UserError
from vtn.utils.logging import JSON_STATS_FILE, truncate_json_stats

logger = logging.getLogger(__name__)


class NonFiniteLossError(UserError, RuntimeError):
    """Training produced a NaN or infinite loss; the message names the epoch and iteration."""


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_initial_weights(model, cfg):
    """Initialise `model` from TRAIN.CHECKPOINT_FILE_PATH (ours, PySlowFast's or the authors' release): tensors of
    another shape (a new head) are re-initialised and named. A file that fills less than half of the model's
    tensors was made for another model: an error unless TRAIN.CHECKPOINT_PARTIAL_LOAD. Returns (data, report)."""
    path = cfg.TRAIN.CHECKPOINT_FILE_PATH
    data = load_checkpoint_file(path)  # an explicitly named bad file is an error, never ignored
    report = load_weights(model, to_vtn_state(data, path, cfg), path)
    total = len(unwrap(model).state_dict())
    loaded = total - len(report["missing"]) - len(report["reinitialised"])
    if loaded * 2 < total and not cfg.TRAIN.CHECKPOINT_PARTIAL_LOAD:
        raise CheckpointError(
            f"TRAIN.CHECKPOINT_FILE_PATH {path} fills only {loaded} of the model's {total} tensors "
            f"({len(report['reinitialised'])} of another shape, {len(report['missing'])} missing): it was made for "
            "another model (e.g. another VTN.BACKBONE). Name a checkpoint of this model, or set "
            "TRAIN.CHECKPOINT_PARTIAL_LOAD True if a partial start is intended."
        )
    if report["reinitialised"]:
        logger.warning(
            "Re-initialised %d tensors whose shape differs from the checkpoint (e.g. a new NUM_CLASSES): %s",
            len(report["reinitialised"]),
            "; ".join(report["reinitialised"]),
        )
    return data, report


class Trainer(TrainerBase):
    """The VTN trainer: builds everything from the config, resumes or initialises, and trains with the hooks
    of `build_hooks`. `train()` runs the remaining epochs and returns the last checkpoint.

    The build_* methods are the seams a project overrides by subclassing (detectron2's DefaultTrainer idea):
    `build_model`, `build_optimizer`, `build_lr_policy`, `build_loader`, `build_mixup`, `build_loss`,
    `build_evaluator`, `build_hooks`. `run_step` is one step: data, forward, loss, backward, optimizer step; it
    returns the step's `StepTimings`, and takes a given batch instead of the loader's next when handed one.
    """

    synchronize_timings = False
    """True: the device is synchronised after the backward pass and after the optimizer step, so that the
    StepTimings of run_step are the device's (preflight's measurement); ordinary training leaves it off and adds
    no sync to its steps."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.device = du.device_for(cfg)
        self.output_dir = cfg.OUTPUT_DIR
        self.master = du.is_master()
        # the batch on the processes this run has (SOLVER.REFERENCE_WORLD_SIZE / SCALE_RULE); one line when adapted
        self.batch_plan = batch_plan(cfg, du.get_world_size())
        if self.batch_plan.note:
            logger.info("Batch: %s", self.batch_plan.note)
        self.model = self.build_model(cfg)
        self.optimizer = self.build_optimizer(cfg, self.model)
        self.lr_policy = self.build_lr_policy(cfg)
        self.scaler = self._build_scaler(cfg)
        self.ema = ModelEMA(self.model, cfg.TRAIN.EMA_DECAY) if cfg.TRAIN.EMA_DECAY > 0 else None
        self.train_loader = self.build_loader(cfg, "train")
        self.val_loader = self.build_loader(cfg, "val") if cfg.TRAIN.EVAL_PERIOD > 0 else None
        check_ranks_agree(cfg, self.train_loader.dataset)  # every rank runs the same code, config and data
        self.mixup = self.build_mixup(cfg)
        self.loss_fn = self.build_loss(cfg)
        self.best_metric = None
        self.config_changes = []  # keys TRAIN.RESUME_ALLOW_CHANGED accepted when resuming
        self._rng_to_restore = None
        self._resume_or_initialise()
        for loader in (self.train_loader, self.val_loader):
            if loader is not None:
                loader.dataset.check_model(self.model)  # e.g. a feature cache of another backbone
        self.model = self._wrap_distributed(self.model)
        self.epoch_iters = len(self.train_loader)
        self.max_epoch = cfg.SOLVER.MAX_EPOCH
        self._check_schedule(cfg)
        self.accumulation = self.batch_plan.accumulation
        if self.master and (self.start_epoch or self.start_iter):
            self._drop_stats_after_checkpoint()
        self.bad_steps = 0
        self.lr = self.lr_policy(self.start_epoch + self.start_iter / self.epoch_iters)
        self.step_output = None  # what run_step leaves for the hooks (None: a skipped step)
        self.last_checkpoint = None
        self._batches = None  # the epoch's batches (before_epoch)
        self._tick = time.perf_counter()  # where the next step's clock starts
        self._first_bad = torch.full((), -1, dtype=torch.long, device=self.device)  # the epoch's first bad step
        self._log_effective_batch()
        self.register_hooks(self.build_hooks())

    # ------------------------------------------------------------------ seams
    @classmethod
    def build_model(cls, cfg):
        return build_model(cfg)

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(model, cfg)

    @classmethod
    def build_lr_policy(cls, cfg) -> Callable[[float], float]:
        """The learning rate at a fractional epoch (SOLVER.LR_POLICY with warmup), times the batch plan's scale
        (SOLVER.SCALE_RULE linear on another number of processes than SOLVER.REFERENCE_WORLD_SIZE)."""
        scale = batch_plan(cfg, du.get_world_size()).lr_scale
        if scale == 1.0:
            return functools.partial(get_lr_at_epoch, cfg)
        return lambda epoch: scale * get_lr_at_epoch(cfg, epoch)

    @classmethod
    def build_loader(cls, cfg, split: str):
        return build_loader(cfg, split)

    @classmethod
    def build_mixup(cls, cfg):
        return build_mixup(cfg) if cfg.MIXUP.ENABLE else None

    @classmethod
    def build_loss(cls, cfg):
        return build_loss(cfg)

    def build_evaluator(self, cfg, loader) -> Callable:
        """`evaluate(model) -> (metrics, protocol)` on the validation loader (see evaluator.compute_metrics)."""

        def evaluate(model):
            result = run_inference(model, loader, cfg, self.device, desc="val")
            return dataset_metrics(result, loader.dataset, cfg.MODEL.NUM_CLASSES), loader.dataset.protocol

        return evaluate

    def build_hooks(self) -> list:
        """LR schedule, metrics and logs, validation, periodic checkpoints, in that order (an epoch's checkpoint
        holds its validation's best top-1, and exists only once the epoch was validated), then the registered hooks
        TRAIN.HOOKS names."""
        cfg = self.cfg
        metrics = MetricsWriter(cfg.LOG_PERIOD, self._build_tensorboard(cfg), cfg.LOG_SECONDS)
        hooks = [LRScheduler(self.lr_policy, set_lr), metrics]
        if self.val_loader is not None:
            hooks.append(EvalHook(cfg.TRAIN.EVAL_PERIOD, self.build_evaluator(cfg, self.val_loader), metrics.emit))
        hooks.append(PeriodicCheckpointer(cfg.TRAIN.CHECKPOINT_PERIOD, cfg.TRAIN.CHECKPOINT_ITERS))
        return hooks + [HOOK_REGISTRY.get(name)(cfg) for name in cfg.TRAIN.HOOKS]

    # ------------------------------------------------------------------ setup helpers
    def _build_scaler(self, cfg):
        if cfg.TRAIN.MIXED_PRECISION and cfg.NUM_GPUS == 0:
            logger.warning("TRAIN.MIXED_PRECISION is ignored on the CPU: training stays in fp32.")
        if cfg.TRAIN.MIXED_PRECISION and cfg.NUM_GPUS > 0 and cfg.TRAIN.AMP_DTYPE == "float16":
            return torch.amp.GradScaler("cuda")
        return None

    def _build_tensorboard(self, cfg):
        if not (cfg.TENSORBOARD.ENABLE and self.master):
            return None
        from vtn.visualization.tensorboard import TensorboardWriter  # optional: imports tensorboard only when on

        return TensorboardWriter(cfg)

    def _wrap_distributed(self, model):
        if du.get_world_size() == 1:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=device_ids, output_device=device_ids and device_ids[0]
        )

    def _check_schedule(self, cfg) -> None:
        """After the build: an error when the training set is shorter than one batch, a warning for LR steps the
        run never reaches."""
        if self.epoch_iters == 0:
            raise UserError(
                f"The training set has {len(self.train_loader.dataset)} clips: fewer than one batch of "
                f"{self.batch_plan.per_process} per process over {du.get_world_size()} processes "
                f"(TRAIN.BATCH_SIZE {cfg.TRAIN.BATCH_SIZE}). Lower TRAIN.BATCH_SIZE or add videos."
            )
        if unreached_steps(cfg):
            logger.warning(
                "SOLVER.STEPS %s: the LR steps at epochs %s are never reached in SOLVER.MAX_EPOCH = %d epochs",
                list(cfg.SOLVER.STEPS),
                unreached_steps(cfg),
                cfg.SOLVER.MAX_EPOCH,
            )

    def _drop_stats_after_checkpoint(self) -> None:
        """Resumed: the interrupted run may have logged past its last checkpoint; those records are done again now,
        so they leave OUTPUT_DIR/json_stats.log."""
        dropped = truncate_json_stats(self.output_dir, self.start_epoch + self.start_iter / self.epoch_iters)
        if dropped:
            logger.info(
                "Resumed: %d records of %s after the checkpoint are replaced by this run's (lines of "
                "stdout.log above this one after the same point were the interrupted run's)",
                dropped,
                JSON_STATS_FILE,
            )

    def _log_effective_batch(self) -> None:
        per_process, world = self.batch_plan.per_process, du.get_world_size()
        logger.info(
            "Effective batch: %d per process x %d processes x %d accumulation steps = %d clips per optimizer step",
            per_process,
            world,
            self.accumulation,
            per_process * world * self.accumulation,
        )

    def _resume_or_initialise(self) -> None:
        cfg = self.cfg
        found = find_resume_checkpoint(self.output_dir) if cfg.TRAIN.AUTO_RESUME else None
        unusable = list_checkpoints(self.output_dir) if cfg.TRAIN.AUTO_RESUME and found is None else []
        if unusable:  # starting again would prune them: stop, nothing is lost
            raise CheckpointError(
                f"none of the {len(unusable)} checkpoints in {checkpoint_dir(self.output_dir)} can be resumed (the "
                "warnings above say why). Move them away to start the run again, or choose another OUTPUT_DIR"
            )
        if found is not None:
            path, data = found
            self.config_changes = check_same_config(cfg, data.get("cfg"), path)
            load_weights(self.model, model_state_from(data, path), path, strict=True)
            self.optimizer.load_state_dict(data["optimizer_state"])
            if self.scaler is not None and data.get("scaler_state"):
                self.scaler.load_state_dict(data["scaler_state"])
            if self.ema is not None and data.get("ema_state"):
                self.ema.load_state_dict(data["ema_state"])
            self.start_epoch, self.start_iter = int(data["epoch"]), int(data["iteration"])
            self.best_metric = data.get("best_metric")
            self._rng_to_restore = rng_state_of_rank(data, du.get_rank(), du.get_world_size())
            restore_loader_state(self.train_loader, data.get("loader_state"), self.start_epoch, self.start_iter)
            logger.info("Resuming from %s: epoch %d, iteration %d", path, self.start_epoch + 1, self.start_iter)
            return
        if cfg.TRAIN.CHECKPOINT_FILE_PATH:
            data, report = load_initial_weights(self.model, cfg)
            if not cfg.TRAIN.CHECKPOINT_EPOCH_RESET and data.get("optimizer_state") and not report["reinitialised"]:
                self.optimizer.load_state_dict(data["optimizer_state"])
                self.start_epoch = int(data.get("epoch", 0))
                self.start_iter = int(data.get("iteration", 0))
        elif self.train_loader.dataset.init_advice:
            logger.warning("TRAIN.DATASET %s: %s.", cfg.TRAIN.DATASET, self.train_loader.dataset.init_advice)
        elif cfg.VTN.FREEZE_BACKBONE and not (cfg.VTN.PRETRAINED or cfg.VTN.PRETRAINED_PATH):
            logger.warning(
                "VTN.FREEZE_BACKBONE True with a randomly initialised backbone (VTN.PRETRAINED False, no "
                "VTN.PRETRAINED_PATH or TRAIN.CHECKPOINT_FILE_PATH): its features stay random, and accuracy may stay "
                "near chance (%.1f%%). Start it from trained weights with one of these keys.",
                100 / max(cfg.MODEL.NUM_CLASSES, 1),
            )
        if self.ema is not None:
            self.ema = ModelEMA(self.model, cfg.TRAIN.EMA_DECAY)

    # ------------------------------------------------------------------ the loop
    def train(self) -> Optional[str]:
        """Train the remaining epochs; the path of the last checkpoint (that of a finished run when nothing was
        left to train). A loader worker that dies ends it with one line (worker_watch.py)."""
        try:
            super().train()
        except LOADER_ERRORS as e:
            raise_if_worker_died(e, self.cfg)
            raise
        if self.last_checkpoint is None:  # nothing left to train: the run was complete already
            found = find_resume_checkpoint(self.output_dir)
            self.last_checkpoint = found[0] if found else None
        return self.last_checkpoint

    def before_train(self) -> None:
        if self._rng_to_restore is not None:
            restore_rng_state(self._rng_to_restore)
        super().before_train()

    def before_epoch(self) -> None:
        self.model.train()
        self._batches = self._epoch_batches(self.epoch, self.first_iter(self.epoch))
        self.optimizer.zero_grad(set_to_none=True)
        self._first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        super().before_epoch()
        self._tick = time.perf_counter()

    def after_step(self) -> None:
        super().after_step()
        self._tick = time.perf_counter()  # the next step's data time starts after the hooks

    def _epoch_batches(self, epoch: int, start_iter: int):
        """The batches of `epoch` from `start_iter` on, in the order of an uninterrupted run (the sampler
        skips finished batches without decoding them)."""
        shuffle_dataset(self.train_loader, epoch, start_iter)
        # Creating the iterator may draw a seed from the global torch RNG; keep that RNG untouched so that a
        # resumed run continues with exactly the random numbers (dropout, mixup) of an uninterrupted one.
        state = torch.get_rng_state()
        iterator = iter(self.train_loader)
        torch.set_rng_state(state)
        return iterator

    def run_step(self, batch: Optional[dict] = None) -> StepTimings:
        """One training step: data, (mixup), forward, loss, backward, and every TRAIN.ACCUMULATION_STEPS steps (and
        at the epoch's last) the optimizer step. `batch` None takes the epoch's next batch (before_epoch starts the
        epoch); a given batch is trained on instead, its step's clock starting now (no data wait). Leaves
        `step_output` for the hooks (None: a skipped step) and returns the step's timings; no host sync unless
        TRAIN.MAX_BAD_STEPS or `synchronize_timings` asks for one."""
        if batch is None:
            batch = self._next_batch()
        else:
            self._tick = time.perf_counter()
        loaded = time.perf_counter()
        step_now = (self.iter + 1) % self.accumulation == 0 or self.iter + 1 == self.epoch_iters
        self.step_output = None
        outputs = self._forward_backward(batch, step_now)
        backward_done = self._clock()
        if outputs is not None and step_now:
            self._optimizer_step()
        end = self._clock()
        timings = StepTimings(loaded - self._tick, backward_done - loaded, end - backward_done, end - self._tick)
        if outputs is not None:
            loss, logits, labels, decode_failures = outputs
            self.step_output = {
                "loss": loss,
                "logits": logits,
                "labels": labels if self.mixup is None else None,
                "decode_failures": decode_failures,
                "data_time": timings.data,
                "iter_time": timings.total,
            }
        return timings

    def _next_batch(self) -> dict:
        if self._batches is None:
            raise RuntimeError("run_step() without a batch takes the epoch's next one: call before_epoch() first")
        return next(self._batches)

    def _clock(self) -> float:
        """perf_counter(), after waiting for the device when `synchronize_timings` asks for it."""
        if self.synchronize_timings:
            synchronize(self.device)
        return time.perf_counter()

    def _forward_backward(self, batch: dict, step_now: bool) -> Optional[tuple]:
        """(loss, logits, labels, decode failures), on the device, of `batch` after its backward pass (gradients
        accumulate; no DDP all-reduce unless `step_now`); None for a step skipped for a non-finite loss."""
        cfg, it = self.cfg, self.iter
        inputs = model_inputs(batch, self.device)  # frames or cached embeddings, and frame_idx
        labels = batch["label"].to(self.device, non_blocking=True)
        targets = labels
        if self.mixup is not None:
            # CPU labels: the mixup's label check is then no per-step host sync with the device
            inputs["frames"], targets = self.mixup(inputs["frames"], batch["label"])
        sync = self.model.no_sync() if (not step_now and hasattr(self.model, "no_sync")) else nullcontext()
        with sync:
            with autocast_for(cfg):
                logits = self.model(**inputs)
                loss = self.loss_fn(logits.float(), targets)
            finite = torch.isfinite(loss)
            # one sync per step, only when skipping is allowed; collective so all processes agree
            if cfg.TRAIN.MAX_BAD_STEPS > 0 and int(du.all_reduce_sum((~finite).long())) > 0:
                self._skip_bad_step()
                return None
            self._first_bad = torch.where(
                ~finite & (self._first_bad < 0), torch.full_like(self._first_bad, it), self._first_bad
            )
            scaled = loss / self.accumulation
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        return loss, logits, labels, batch["decode_failures"].to(self.device)

    def _optimizer_step(self) -> None:
        clip = self.cfg.SOLVER.CLIP_GRAD_L2NORM
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.scaler is not None:
            if clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(params, clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(params, clip)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)

    def _skip_bad_step(self) -> None:
        self.bad_steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        epoch, it = self.epoch, self.iter
        if self.bad_steps > self.cfg.TRAIN.MAX_BAD_STEPS:
            raise NonFiniteLossError(
                f"Non-finite loss at epoch {epoch + 1}, iteration {it + 1}: more than TRAIN.MAX_BAD_STEPS = "
                f"{self.cfg.TRAIN.MAX_BAD_STEPS} bad steps; the last good checkpoint in "
                f"{checkpoint_dir(self.output_dir)} is intact."
            )
        logger.warning(
            "Non-finite loss at epoch %d, iteration %d: step skipped (%d of at most %d)",
            epoch + 1,
            it + 1,
            self.bad_steps,
            self.cfg.TRAIN.MAX_BAD_STEPS,
        )

    def check_finite(self) -> None:
        """One sync: was any loss since the start of the epoch NaN or infinite? Then stop before saving anything.
        (The hooks call it before a log line, a checkpoint and the epoch summary.)"""
        bad = du.all_reduce_sum((self._first_bad >= 0).long().clone())
        if int(bad) > 0:
            where = int(self._first_bad) + 1 if int(self._first_bad) >= 0 else "unknown (another process)"
            raise NonFiniteLossError(
                f"Non-finite (NaN or infinite) loss at epoch {self.epoch + 1}, iteration {where}. Training stopped; "
                f"the last good checkpoint in {checkpoint_dir(self.output_dir)} is intact. Lower SOLVER.BASE_LR, "
                "enable SOLVER.CLIP_GRAD_L2NORM, or allow skipping with TRAIN.MAX_BAD_STEPS."
            )

    # ------------------------------------------------------------------ checkpoints
    def save(self, epoch: int, iteration: int) -> Optional[str]:
        """A checkpoint of the position (epoch index, iterations done in it), written by the master process."""
        path = os.path.join(checkpoint_dir(self.output_dir), checkpoint_name(epoch, iteration))
        rng_states = du.all_gather_object(capture_rng_state())  # every process resumes with its own random numbers
        if self.master:
            self._write(path, epoch, iteration, rng_states)
            prune_checkpoints(self.output_dir, self.cfg.TRAIN.CHECKPOINT_KEEP)
            logger.info("Saved %s", path)
        du.barrier()
        return path

    def save_best(self) -> None:
        """Keep the current weights (the end of epoch `self.epoch`, validated) as the best checkpoint."""
        if self.master:
            self._write(os.path.join(checkpoint_dir(self.output_dir), BEST_NAME), self.epoch + 1, 0)
        du.barrier()

    def _write(self, path: str, epoch: int, iteration: int, rng_states: Optional[list] = None) -> None:
        """save_checkpoint of the trainer's state; a failed write (a full disk, a file-size limit, EIO) ends the run
        with one line that names the newest complete checkpoint, from which the same command continues."""
        try:
            state = (self.model, self.optimizer, self.scaler, self.ema)
            loader = loader_state(self.train_loader)
            save_checkpoint(path, self.cfg, *state, epoch, iteration, self.best_metric, rng_states, loader)
        except OutputWriteError as e:
            found = list_checkpoints(self.output_dir)
            kept = f"the newest complete checkpoint is {found[-1][2]}" if found else "no checkpoint was kept"
            fix = "Free space" if isinstance(e, DiskFullError) else "Fix the cause"
            raise type(e)(f"{e}; {kept}. {fix} and run the same command again to continue.") from e
