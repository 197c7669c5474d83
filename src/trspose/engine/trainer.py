"""Training: ``train`` (run folder, seeds, then the builder and the loop) and ``fit``, the loop, which reads top to
bottom.

Each step: ``method.training_step(labeled, unlabeled)`` -> backward -> clip -> optimiser step ->
``method.after_optimizer_step()`` (EMA, reviewer) -> log -> periodic evaluation and checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from trspose.config import ExperimentConfig, TrainConfig, check_training_schedule
from trspose.data.datasets import collate_pose
from trspose.data.unlabeled import collate_unlabeled
from trspose.engine.build import TrainingRun, build_training_run
from trspose.engine.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from trspose.engine.distributed import (
    DistributedContext,
    all_gather_objects,
    barrier,
    cleanup_distributed,
    reduce_mean,
    setup_distributed,
)
from trspose.engine.loaders import PositionDataset, StreamSpec, stream
from trspose.engine.run_folder import (
    MetricsLogger,
    note_resumed_environment,
    prepare_run_folder,
    write_run_metadata,
)
from trspose.engine.schedules import learning_rate_factor
from trspose.errors import TrainingError, TrsposeError
from trspose.evaluation.inference import print_metrics_table
from trspose.io import atomic_path, finite_or_none, remove_temporaries, write_json, write_text


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cpu_has_bf16_units() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles). Elsewhere (AVX2 only) oneDNN emulates
    bf16, which was measured about 20x slower than float32, so autocast stays off there."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def uses_bf16(amp: bool, device: torch.device) -> bool:
    """Whether training runs under bf16 autocast: ``train.amp`` on a device with bf16 units (CUDA, or a CPU with
    AVX512-BF16 or AMX); float32 otherwise. Recorded in the run's environment.json at start and each resume."""
    return amp and (device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16_units()))


def autocast(amp: bool, device: torch.device):
    if uses_bf16(amp, device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def build_optimizer(schedule: TrainConfig, parameters) -> torch.optim.Optimizer:
    optimizer = torch.optim.AdamW if schedule.optimizer == "adamw" else torch.optim.Adam
    return optimizer(parameters, lr=schedule.lr, weight_decay=schedule.weight_decay)


def train(cfg: ExperimentConfig, *, resume: bool = False, overwrite: bool = False) -> dict:
    """Train from a config; returns the final validation metrics (percent)."""
    check_training_schedule(cfg)
    ctx = setup_distributed()
    try:
        if ctx.is_main:
            prepare_run_folder(cfg, resume=resume, overwrite=overwrite)
        barrier()
        run_dir = Path(cfg.output_dir) / cfg.name
        seed_everything(cfg.train.seed)  # the same initial weights on every rank and in every rerun
        try:
            run = build_training_run(cfg, run_dir, ctx, resume=resume)
        except TrsposeError:
            if ctx.is_main and not resume:  # a new run that never started: rerunning needs no --overwrite
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        try:
            metrics = fit(run, cfg.train, run_dir, ctx, resume=resume)
        except BaseException:
            # A new run that stops before it wrote anything worth keeping (an image that cannot be decoded at the
            # first step): leave nothing that would refuse the corrected rerun. A run with a checkpoint or logged
            # metrics stays (its rerun is told to --resume or --overwrite).
            if ctx.is_main and not resume and _nothing_to_keep(run_dir):
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        if ctx.is_main:
            print_metrics_table(metrics, title=f"{cfg.name}: validation")
        return metrics
    finally:
        cleanup_distributed()


def fit(
    run: TrainingRun, schedule: TrainConfig, run_dir: Path, ctx: DistributedContext, *, resume: bool
) -> dict:
    """Train ``run.method`` for ``schedule.steps`` optimiser steps; returns the final validation metrics."""
    method = run.method
    seed_everything(run.seeds.loop(ctx.rank))
    method.to(ctx.device)
    optimizer = build_optimizer(schedule, method.parameters())
    lr_factor = lambda s: learning_rate_factor(  # noqa: E731
        s,
        total_steps=schedule.steps,
        warmup_steps=schedule.warmup_steps,
        schedule=schedule.schedule,
        milestones=schedule.milestones,
        gamma=schedule.gamma,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    start_step, best = 0, {"score": -math.inf, "step": -1}
    checkpoints = run_dir / "checkpoints"
    if resume:
        if ctx.is_main:  # a write killed halfway left its temporary: nothing else writes here now
            remove_temporaries(checkpoints)
            remove_temporaries(run_dir)
        state = load_checkpoint(checkpoints / "last.pt")
        method.load_state_dict(state["method"])
        method.to(ctx.device)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"][min(ctx.rank, len(state["rng"]) - 1)])
        start_step, best = state["step"], {"score": state["best_score"], "step": state["best_step"]}
        _truncate_metrics(run_dir / "metrics.jsonl", start_step)
        if schedule.keep_checkpoints and ctx.is_main:  # interrupted between saving 'last' and keeping it
            _keep(checkpoints / "last.pt", checkpoints / f"step_{start_step:06d}.pt")
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        method.wrap(lambda module: DistributedDataParallel(module, device_ids=device_ids))
    if ctx.is_main:
        precision = "bf16 autocast" if uses_bf16(schedule.amp, ctx.device) else "float32"
        if resume:
            note_resumed_environment(run_dir, start_step, ctx.device, ctx.world_size, precision)
        else:
            write_run_metadata(run_dir, run.config, ctx.device, ctx.world_size, precision)
    logger = MetricsLogger(run_dir if ctx.is_main else None)

    streams = _open_streams(run, schedule, ctx, start_step)
    bar = tqdm(
        total=schedule.steps, initial=start_step, desc="train", disable=not ctx.is_main, dynamic_ncols=True
    )
    window_images, window_start = 0, time.perf_counter()
    try:
        method.train()
        for step in range(start_step, schedule.steps):
            labeled = next(streams["labeled"]).to(ctx.device, non_blocking=True)
            unlabeled = (
                next(streams["unlabeled"]).to(ctx.device, non_blocking=True)
                if "unlabeled" in streams and step >= method.unlabeled_from_step
                else None
            )
            with autocast(schedule.amp, ctx.device):
                out = method.training_step(labeled, unlabeled, step)
            if not torch.isfinite(out.loss):
                raise TrainingError(
                    f"loss became {float(out.loss.detach())} at step {step}; the last good checkpoint is '{checkpoints / 'last.pt'}'. "
                    "Lower train.lr or set train.grad_clip, then --resume"
                )
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            if schedule.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(method.parameters(), schedule.grad_clip)
            optimizer.step()
            scheduler.step()
            method.after_optimizer_step(step)

            done = step + 1
            window_images += labeled.images.shape[0] * ctx.world_size
            if done % schedule.log_every == 0 or done == schedule.steps:
                elapsed = time.perf_counter() - window_start
                values = {"loss/total": out.loss.detach(), **out.metrics}
                metrics = reduce_mean({k: float(v) for k, v in values.items()})
                metrics.update(
                    {
                        "lr": optimizer.param_groups[0]["lr"],
                        "speed/images_per_s": window_images / max(elapsed, 1e-9),
                    }
                )
                logger.log(done, metrics)
                bar.set_postfix(
                    loss=f"{metrics['loss/total']:.5f}", img_s=f"{metrics['speed/images_per_s']:.1f}"
                )
                window_images, window_start = 0, time.perf_counter()
            bar.update(1)
            if (schedule.eval_every and done % schedule.eval_every == 0) or done == schedule.steps:
                best = _evaluate_and_select(run, schedule, ctx, logger, done, best, checkpoints)
            if (
                schedule.checkpoint_every and done % schedule.checkpoint_every == 0
            ) or done == schedule.steps:
                _save(run, optimizer, scheduler, done, best, checkpoints / "last.pt", ctx)
                if schedule.keep_checkpoints and ctx.is_main:
                    _keep(checkpoints / "last.pt", checkpoints / f"step_{done:06d}.pt")
    finally:
        bar.close()  # also on errors, so the error message starts on its own line
    final = run.validation.validation_metrics(method.inference_model(), ctx, progress=True)
    if ctx.is_main:
        logger.log(schedule.steps, final, kind="final")
        write_json(
            {"step": schedule.steps, **finite_or_none(final)}, run_dir / "final_metrics.json", indent=2
        )
    logger.close()
    return final


def _open_streams(run: TrainingRun, schedule: TrainConfig, ctx: DistributedContext, start_step: int) -> dict:
    pin = ctx.device.type == "cuda"
    labeled = PositionDataset(run.labeled, seed=run.seeds.labeled)
    streams = {
        "labeled": stream(labeled, StreamSpec(schedule.batch_size, ctx.rank, ctx.world_size), collate_pose,
                          start_step=start_step, workers=run.workers, pin_memory=pin),
    }  # fmt: skip
    if run.unlabeled is not None:
        # Read from the end of the burn-in on (the batches of a step are a function of the step alone, so they are
        # those an earlier start would give): burn-in steps load no unlabelled people they would not use.
        unlabeled = PositionDataset(run.unlabeled, seed=run.seeds.unlabeled)
        streams["unlabeled"] = stream(
            unlabeled, StreamSpec(schedule.unlabeled_batch_size, ctx.rank, ctx.world_size), collate_unlabeled,
            start_step=max(start_step, run.method.unlabeled_from_step), workers=run.workers, pin_memory=pin,
        )  # fmt: skip
    return streams


def _evaluate_and_select(
    run: TrainingRun,
    schedule: TrainConfig,
    ctx: DistributedContext,
    logger,
    step: int,
    best: dict,
    checkpoints: Path,
) -> dict:
    """Hold-out PCK of each candidate network (for the reviewer and, with ``select_on=holdout``, 'best.pt'), the
    quality of the pseudo-labels and, before the final step (whose validation ``fit`` logs as 'final'), validation
    AP."""
    method = run.method
    # the pseudo-labels first: after_evaluation may snapshot the teacher into the reviewer ('best'), and the reviewer
    # to measure is the one the student learned from until now, not a copy of the teacher
    pseudo = run.pseudo_labels.measure(method, ctx.device) if run.pseudo_labels and ctx.is_main else {}
    holdout = {}
    if run.holdout is not None:
        holdout = {
            f"holdout/pck_{name}": run.holdout.pck(network, ctx)
            for name, network in method.candidates().items()
        }
        method.after_evaluation(step, holdout[f"holdout/pck_{method.selection_candidate}"])
    validation = (
        run.validation.validation_metrics(method.inference_model(), ctx) if step != schedule.steps else {}
    )
    logger.log(step, {**holdout, **validation, **pseudo}, kind="eval")
    if schedule.select_on == "holdout" and holdout:
        score = holdout[f"holdout/pck_{method.selection_candidate}"]
        if score > best["score"]:
            best = {"score": score, "step": step}
            _save(run, None, None, step, best, checkpoints / "best.pt", ctx)
    elif step == schedule.steps:  # select_on=final (or no hold-out to select on): 'best' is the final network
        best = {"score": math.nan, "step": step}
        _save(run, None, None, step, best, checkpoints / "best.pt", ctx)
    method.train()
    return best


def _save(
    run: TrainingRun, optimizer, scheduler, step: int, best: dict, path: Path, ctx: DistributedContext
) -> None:
    rng_states = all_gather_objects(capture_rng_state())  # every rank's RNG, so each resumes its own stream
    if not ctx.is_main:
        return
    state = {
        "config": run.config,
        "step": step,
        "method": run.method.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer else None,
        "scheduler": scheduler.state_dict() if scheduler else None,
        "rng": rng_states,
        "best_score": best["score"],
        "best_step": best["step"],
    }
    save_checkpoint(state, path)


def _nothing_to_keep(run_dir: Path) -> bool:
    """Whether a run folder holds no checkpoint and no logged metrics (only what its start wrote)."""
    metrics = run_dir / "metrics.jsonl"
    has_metrics = metrics.is_file() and metrics.stat().st_size > 0
    return not has_metrics and not any((run_dir / "checkpoints").glob("*.pt"))


def _keep(last: Path, kept: Path) -> None:
    """``last`` also as ``kept`` (``train.keep_checkpoints``), unless it is there. 'last' is replaced by a new file
    at its next save, so a hard link stays this one; where links fail, an atomic copy."""
    if kept.exists():
        return
    try:
        os.link(last, kept)
    except OSError:
        with atomic_path(kept) as temporary:
            shutil.copy2(last, temporary)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records logged after the checkpoint we resume from, so the curve has no duplicates."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    write_text("".join(line + "\n" for line in kept), path)
