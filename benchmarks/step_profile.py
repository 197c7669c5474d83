"""Where one semi-supervised training step spends its time: data loading, teacher and reviewer forward, the warps
of the pseudo-targets, Keypoint-Mix and joint cutout, the student's forward, the loss, backward, the optimiser and
the EMA update, for mean teacher and TRS on the CPU benchmark config at 1 % labels, and for a step of their
supervised burn-in.

    python benchmarks/step_profile.py                        # both methods; record to benchmarks/results/
    python benchmarks/step_profile.py --steps 20 --label before --extra data.workers=0

Each method is timed twice over the same ``--steps`` steps (after ``--warmup`` untimed ones): once reading its
batches through the training loaders as ``trspose train`` does (``data.workers`` worker processes on the same
cores), once from batches read beforehand and kept in memory, so that the difference is what loading costs a step
beyond the model's own compute. The teacher (and TRS's reviewer) predict from the first step (burn-in 0; TRS's
'best' reviewer store holds a snapshot of the teacher), so every timed step is a full semi-supervised step.
Phases are timed with hooks on the networks and wrappers around the method's own functions, on the CPU where every
call is synchronous; 'loss and the rest' is the step's time outside the named phases. Records (one per method and
loading mode, with the machine, the code revision and this command) are appended to
benchmarks/results/step_profile.json, and a table of milliseconds and shares is printed.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from runs import REPO, load_records, markdown_table, save_records
from ssl_synthetic import CONFIG, NO_MFL

METHODS = {
    "mean_teacher": ["method.name=mean_teacher", NO_MFL],
    "trs": [],
    # a step of the supervised burn-in that precedes both: the labelled batch only
    "burn-in": ["method.name=mean_teacher", NO_MFL, "method.burn_in_steps=1000000"],
}
COMMON = [
    "data.labeled_fraction=0.01",
    "data.split_mode=random",
    "method.burn_in_steps=0",
    "method.rampup_steps=0",
]
PHASES = ["data", "teacher forward", "reviewer forward", "pseudo-target warps", "Keypoint-Mix + cutout",
          "student forward", "loss and the rest", "backward", "optimiser", "EMA + reviewer"]  # fmt: skip


class Timer:
    """Seconds per phase, summed over the timed steps (``active`` False during warm-up)."""

    def __init__(self) -> None:
        self.total: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self.active = False

    @contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.active:
                self.total[name] += time.perf_counter() - start

    def wrap(self, name: str, function):
        def timed(*args, **kwargs):
            with self.phase(name):
                return function(*args, **kwargs)

        return timed

    def hook(self, module: torch.nn.Module, name: str) -> None:
        """Time every forward of ``module`` as ``name``."""
        starts = []
        module.register_forward_pre_hook(lambda m, args: starts.append(time.perf_counter()))

        def done(m, args, out):
            start = starts.pop()
            if self.active:
                self.total[name] += time.perf_counter() - start

        module.register_forward_hook(done)


def profile(method_name: str, extra: list[str], steps: int, warmup: int, cached: bool) -> dict:
    """Time ``warmup + steps`` training steps of one method; returns ms per step by phase and steps/s."""
    import trspose.methods.trs as trs_module
    from trspose.config import load_config
    from trspose.engine.build import build_training_run
    from trspose.engine.distributed import setup_distributed
    from trspose.engine.trainer import _open_streams, build_optimizer, seed_everything

    cfg = load_config(REPO / CONFIG, [*COMMON, *METHODS[method_name], *extra])
    ctx = setup_distributed("cpu")
    seed_everything(cfg.train.seed)
    run = build_training_run(cfg, None, ctx)
    method = run.method
    optimizer = build_optimizer(cfg.train, method.parameters())
    streams = _open_streams(run, cfg.train, ctx, start_step=0)
    timer = Timer()
    if cfg.method.reviewer.policy != "none" and method_name == "trs":
        method.after_evaluation(0, 1.0)  # 'best': the store takes the teacher, so the reviewer predicts
        method.reviewer.predict = timer.wrap("reviewer forward", method.reviewer.predict)
    # after the snapshot: a copied network would carry the teacher's hooks along
    timer.hook(method.trainable["student"], "student forward")
    timer.hook(method.teacher, "teacher forward")
    method.perturb_strong_view = timer.wrap("Keypoint-Mix + cutout", method.perturb_strong_view)
    original_make = trs_module.make_pseudo_target
    trs_module.make_pseudo_target = timer.wrap("pseudo-target warps", original_make)
    batches = None
    if cached:  # read every batch first: the timed steps then load nothing
        batches = [(next(streams["labeled"]), next(streams["unlabeled"])) for _ in range(warmup + steps)]
        if getattr(method, "unlabeled_from_step", 0) > warmup + steps:
            batches = [(labeled, None) for labeled, _ in batches]
    method.train()
    try:
        start = 0.0
        for step in range(warmup + steps):
            if step == warmup:
                timer.active, start = True, time.perf_counter()
            with timer.phase("data"):
                labeled, unlabeled = batches[step] if batches else (next(streams["labeled"]), None)
                # as the trainer: no unlabelled batch before the method reads one (code older than
                # Method.unlabeled_from_step read one every step)
                if not batches and step >= getattr(method, "unlabeled_from_step", 0):
                    unlabeled = next(streams["unlabeled"])
            with timer.phase("loss and the rest"):
                out = method.training_step(labeled, unlabeled, step)
            with timer.phase("backward"):
                optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
            with timer.phase("optimiser"):
                optimizer.step()
            with timer.phase("EMA + reviewer"):
                method.after_optimizer_step(step)
        wall = time.perf_counter() - start
    finally:
        trs_module.make_pseudo_target = original_make
    inside = sum(timer.total[p] for p in PHASES if p not in ("data", "loss and the rest", "backward", "optimiser",
                                                            "EMA + reviewer"))  # fmt: skip
    timer.total["loss and the rest"] -= inside  # the training step less the phases timed inside it
    return {
        "method": method_name,
        "loading": "from memory" if cached else f"loaders, {cfg.data.workers} workers",
        "steps_per_s": round(steps / wall, 3),
        "ms_per_step": {p: round(1000 * timer.total[p] / steps, 1) for p in PHASES},
        "unaccounted_ms": round(1000 * (wall - sum(timer.total.values())) / steps, 1),
        "unlabeled_crops_per_step": cfg.train.unlabeled_batch_size * cfg.data.strong_views,
        "labeled_crops_per_step": cfg.train.batch_size,
    }


def table(records: list[dict]) -> str:
    rows = []
    for r in records:
        total = 1000 / r["steps_per_s"]
        cells = [f"{ms:.0f} ({100 * ms / total:.0f} %)" for ms in r["ms_per_step"].values()]
        rows.append([r.get("label", "-"), r["method"], r["loading"], f"{r['steps_per_s']:.2f}", f"{total:.0f}",
                     *cells, f"{r['unaccounted_ms']:.0f}"])  # fmt: skip
    return markdown_table(["label", "method", "batches", "steps/s", "ms/step", *PHASES, "untimed"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--label", default="", help="a name for this measurement (e.g. 'before', 'after')")
    parser.add_argument("--extra", nargs="*", default=[], help="more dotted overrides for every run")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "step_profile.json"))
    args = parser.parse_args()
    from trspose.engine.run_folder import device_name, git_revision

    torch.set_num_threads(2)
    records = []
    for method_name in args.methods:
        for cached in (False, True):
            record = profile(method_name, args.extra, args.steps, args.warmup, cached)
            record.update(
                label=args.label, extra=args.extra, device=device_name(torch.device("cpu")),
                git_revision=git_revision(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                command=shlex.join(["python", "benchmarks/step_profile.py", *sys.argv[1:]]),
            )  # fmt: skip
            records.append(record)
            print(table([record]).splitlines()[-1], flush=True)
    print(table(records))
    out = Path(args.out)
    save_records([*load_records(out), *records], out)


if __name__ == "__main__":
    main()
