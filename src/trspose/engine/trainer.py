"""The training loop: one ``fit`` function that reads top to bottom.

Each step: ``method.training_step(labeled, unlabeled)`` -> backward -> clip -> optimiser step ->
``method.after_optimizer_step()`` (EMA, reviewer) -> log -> periodic evaluation and checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from trspose.config import ExperimentConfig, config_to_dict
from trspose.data.datasets import collate_pose
from trspose.data.unlabeled import collate_unlabeled
from trspose.engine import build
from trspose.engine.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from trspose.engine.distributed import DistributedContext, all_gather_objects, reduce_mean
from trspose.engine.evaluate import coco_metrics, pck_metric, pck_of_instances, predict
from trspose.engine.loaders import PositionDataset, StreamSpec, stream
from trspose.engine.run_folder import MetricsLogger, note_resumed_environment, write_run_metadata
from trspose.engine.schedules import learning_rate_factor
from trspose.errors import TrainingError


@dataclass
class TrainingData:
    """Everything the loop reads: the labelled stream, the hold-out and validation sets."""

    labeled: object  # TopDownDataset (train transform)
    holdout: object | None  # TopDownDataset (eval transform) on labelled hold-out instances
    holdout_instances: list
    validation: object  # TopDownDataset (eval transform)
    val_annotations: Path
    unlabeled: object | None = None  # a dataset of unlabelled views, for semi-supervised methods
    val_image_ids: list[int] | None = None  # the images scored (eval.max_images); None: all of the file


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cpu_has_bf16_units() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles). Elsewhere (AVX2 only) oneDNN emulates
    bf16, which was measured about 20x slower than float32, so autocast stays off there."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def uses_bf16(cfg: ExperimentConfig, device: torch.device) -> bool:
    """Whether training runs under bf16 autocast: ``train.amp`` on a device with bf16 units (CUDA, or a CPU with
    AVX512-BF16 or AMX); float32 otherwise. Recorded in the run's environment.json at start and each resume."""
    return cfg.train.amp and (device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16_units()))


def autocast(cfg: ExperimentConfig, device: torch.device):
    if uses_bf16(cfg, device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluate_validation(
    cfg, method, data: TrainingData, ctx: DistributedContext, progress: bool = False
) -> dict:
    """COCO keypoint AP (in percent) of the method's inference network on the validation set."""
    spec = build.keypoint_spec(cfg)
    predictions = predict(
        method.inference_model(), data.validation, build.build_codec(cfg), ctx=ctx, batch_size=cfg.eval.batch_size,
        flip_index=spec.flip_index() if cfg.eval.flip_test else None, decode=cfg.eval.decode, progress=progress,
    )  # fmt: skip
    if not ctx.is_main:
        return {}
    coco = coco_metrics(  # detector boxes (data.val_boxes): OKS-NMS, as trspose eval
        predictions,
        data.val_annotations,
        spec.sigmas,
        oks_nms=bool(cfg.data.val_boxes),
        image_ids=data.val_image_ids,
    )
    metrics = {f"val/{k}": 100.0 * v for k, v in coco.items()}
    # per-joint curves: PCK@0.1 of each keypoint (keypoints never labelled in the set are left out)
    _, per_keypoint = pck_of_instances(predictions, data.validation.instances, threshold=0.1)
    metrics.update(
        {f"val_pck/{n}": 100.0 * float(v) for n, v in zip(spec.names, per_keypoint) if np.isfinite(v)}
    )
    return metrics


def evaluate_holdout(cfg, method, data: TrainingData, ctx: DistributedContext) -> dict[str, float]:
    """PCK@0.1 on the labelled hold-out slice for each candidate network (selection never sees validation)."""
    if data.holdout is None:
        return {}
    spec = build.keypoint_spec(cfg)
    scores = {}
    for name, network in method.candidates().items():
        predictions = predict(
            network, data.holdout, build.build_codec(cfg), ctx=ctx, batch_size=cfg.eval.batch_size,
            flip_index=spec.flip_index() if cfg.eval.flip_test else None, decode=cfg.eval.decode,
        )  # fmt: skip
        scores[f"holdout/pck_{name}"] = 100.0 * pck_metric(predictions, data.holdout_instances)
    return scores


def fit(
    cfg: ExperimentConfig, method, data: TrainingData, run_dir: Path, ctx: DistributedContext, resume: bool
) -> dict:
    """Train ``method`` for ``cfg.train.steps`` optimiser steps; returns the final validation metrics."""
    t = cfg.train
    seed_everything(t.seed + ctx.rank)
    method.to(ctx.device)
    optimizer = build.build_optimizer(cfg, method.parameters())
    lr_factor = lambda s: learning_rate_factor(  # noqa: E731
        s,
        total_steps=t.steps,
        warmup_steps=t.warmup_steps,
        schedule=t.schedule,
        milestones=t.milestones,
        gamma=t.gamma,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    start_step, best = 0, {"score": -math.inf, "step": -1}
    checkpoints = run_dir / "checkpoints"
    if resume:
        state = load_checkpoint(checkpoints / "last.pt")
        method.load_state_dict(state["method"])
        method.to(ctx.device)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"][min(ctx.rank, len(state["rng"]) - 1)])
        start_step, best = state["step"], {"score": state["best_score"], "step": state["best_step"]}
        _truncate_metrics(run_dir / "metrics.jsonl", start_step)
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        method.wrap(lambda module: DistributedDataParallel(module, device_ids=device_ids))
    if ctx.is_main:
        precision = "bf16 autocast" if uses_bf16(cfg, ctx.device) else "float32"
        if resume:
            note_resumed_environment(run_dir, start_step, ctx.device, ctx.world_size, precision)
        else:
            write_run_metadata(run_dir, cfg, ctx.device, ctx.world_size, precision)
    logger = MetricsLogger(run_dir if ctx.is_main else None)

    streams = _open_streams(cfg, method, data, ctx, start_step)
    bar = tqdm(total=t.steps, initial=start_step, desc="train", disable=not ctx.is_main, dynamic_ncols=True)
    window_images, window_start = 0, time.perf_counter()
    try:
        method.train()
        for step in range(start_step, t.steps):
            labeled = next(streams["labeled"]).to(ctx.device, non_blocking=True)
            unlabeled = (
                next(streams["unlabeled"]).to(ctx.device, non_blocking=True)
                if "unlabeled" in streams
                else None
            )
            with autocast(cfg, ctx.device):
                out = method.training_step(labeled, unlabeled, step)
            if not torch.isfinite(out.loss):
                raise TrainingError(
                    f"loss became {float(out.loss.detach())} at step {step}; the last good checkpoint is '{checkpoints / 'last.pt'}'. "
                    "Lower train.lr or set train.grad_clip, then --resume"
                )
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(method.parameters(), t.grad_clip)
            optimizer.step()
            scheduler.step()
            method.after_optimizer_step(step)

            done = step + 1
            window_images += labeled.images.shape[0] * ctx.world_size
            if done % t.log_every == 0 or done == t.steps:
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
            if (t.eval_every and done % t.eval_every == 0) or done == t.steps:
                best = _evaluate_and_select(cfg, method, data, ctx, logger, done, best, checkpoints)
            if (t.checkpoint_every and done % t.checkpoint_every == 0) or done == t.steps:
                _save(cfg, method, optimizer, scheduler, done, best, checkpoints / "last.pt", ctx)
    finally:
        bar.close()  # also on errors, so the error message starts on its own line
    final = evaluate_validation(cfg, method, data, ctx, progress=True)
    if ctx.is_main:
        logger.log(t.steps, final, kind="final")
        finite = {k: (v if math.isfinite(v) else None) for k, v in final.items()}  # undefined (nan) -> null
        (run_dir / "final_metrics.json").write_text(json.dumps({"step": t.steps, **finite}, indent=2))
    logger.close()
    return final


def _open_streams(cfg, method, data: TrainingData, ctx: DistributedContext, start_step: int) -> dict:
    t = cfg.train
    pin = ctx.device.type == "cuda"
    labeled = PositionDataset(data.labeled, seed=t.seed)
    streams = {
        "labeled": stream(labeled, StreamSpec(t.batch_size, ctx.rank, ctx.world_size), collate_pose,
                          start_step=start_step, workers=cfg.data.workers, pin_memory=pin),
    }  # fmt: skip
    if method.uses_unlabeled:
        unlabeled = PositionDataset(data.unlabeled, seed=t.seed + 1)
        streams["unlabeled"] = stream(
            unlabeled, StreamSpec(method.unlabeled_batch_size, ctx.rank, ctx.world_size), collate_unlabeled,
            start_step=start_step, workers=cfg.data.workers, pin_memory=pin,
        )  # fmt: skip
    return streams


def _evaluate_and_select(cfg, method, data, ctx, logger, step: int, best: dict, checkpoints: Path) -> dict:
    """Hold-out scores for selection and reviewer policies; 'best.pt' follows train.select_on."""
    holdout = evaluate_holdout(cfg, method, data, ctx)
    if holdout:
        method.after_evaluation(step, holdout[next(iter(holdout))])
    validation = evaluate_validation(cfg, method, data, ctx) if step != cfg.train.steps else {}
    logger.log(step, {**holdout, **validation}, kind="eval")
    score = holdout[next(iter(holdout))] if (cfg.train.select_on == "holdout" and holdout) else float(step)
    if score > best["score"]:
        best = {"score": score, "step": step}
        _save(cfg, method, None, None, step, best, checkpoints / "best.pt", ctx)
    method.train()
    return best


def _save(
    cfg, method, optimizer, scheduler, step: int, best: dict, path: Path, ctx: DistributedContext
) -> None:
    rng_states = all_gather_objects(capture_rng_state())  # every rank's RNG, so each resumes its own stream
    if not ctx.is_main:
        return
    state = {
        "config": config_to_dict(cfg),
        "step": step,
        "method": method.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer else None,
        "scheduler": scheduler.state_dict() if scheduler else None,
        "rng": rng_states,
        "best_score": best["score"],
        "best_step": best["step"],
    }
    save_checkpoint(state, path)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records logged after the checkpoint we resume from, so the curve has no duplicates."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))
