"""Semi-supervised results table on the synthetic dataset: every method and ablation at equal budget.

    python benchmarks/ssl_synthetic.py                 # full table (hours on 2 CPU cores; see README)
    python benchmarks/ssl_synthetic.py --quick         # minutes: tiny dataset, few steps, one budget
    python benchmarks/ssl_synthetic.py --table-only    # no training: the table and curves from the records
    python benchmarks/ssl_synthetic.py --extra train.steps=2000   # the same table at another budget (own rows)

Each row trains configs/trs_resnet10t_fpn_96x64_synthetic.yaml with the overrides below, so all rows share the
data, model, input size, augmentation, schedule and the number of optimiser steps with the same labelled and
unlabelled batch sizes. Records go to benchmarks/results/ssl_synthetic.json; learning curves (validation AP
against step, from each run's metrics.jsonl) to benchmarks/results/ssl_synthetic_<steps>_steps_curves.png.
"""

from __future__ import annotations

import argparse

from runs import REPO, ResultsFile, name_part, plot_curves, resolved_config, summary_table

CONFIG = "configs/trs_resnet10t_fpn_96x64_synthetic.yaml"
SUPERVISED_CONFIG = "configs/supervised_resnet10t_fpn_96x64_synthetic.yaml"  # CONFIG's base
NO_MFL = "model.mfl_levels=[]"

# (method label, ablation label, overrides)
ROWS = [
    ("supervised", "-", ["method.name=supervised", NO_MFL]),
    ("mean_teacher", "-", ["method.name=mean_teacher", NO_MFL]),
    ("dual", "-", ["method.name=dual", NO_MFL]),
    ("trs", "full", []),
    ("trs", "no reviewer", ["method.reviewer.policy=none"]),
    ("trs", "no MFL", [NO_MFL]),
    ("trs", "no Keypoint-Mix", ["method.keypoint_mix=false"]),
    ("trs", "reviewer periodic", ["method.reviewer.policy=periodic", "method.reviewer.every=250"]),
    ("trs", "reviewer slow EMA", ["method.reviewer.policy=slow_ema"]),
]
UPPER_BOUND = ("supervised", "all labels", ["method.name=supervised", NO_MFL])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--only", nargs="*", default=[], help="run only rows whose 'method/ablation' contains one of these"
    )
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="train nothing: print the table and redraw the curves from the records",
    )
    parser.add_argument(
        "--extra",
        nargs="*",
        default=[],
        help="more dotted overrides for every run, e.g. train.steps=2000 (own rows)",
    )
    args = parser.parse_args()
    name = "ssl_synthetic_quick" if args.quick else "ssl_synthetic"
    out = REPO / "benchmarks" / "results" / f"{name}.json"
    quick = [
        "data.synthetic_size=tiny", "train.steps=40", "train.warmup_steps=5", "train.eval_every=10",
        "train.checkpoint_every=40", "method.burn_in_steps=10", "method.rampup_steps=10", "train.batch_size=8",
        "method.unlabeled_batch_size=8", "data.holdout_fraction=0.3",
    ] if args.quick else []  # fmt: skip
    fractions = [0.3] if args.quick else args.fractions
    results = ResultsFile(out)
    jobs = [(f, *row) for f in fractions for row in ROWS] + [(1.0, *UPPER_BOUND)]
    current = []  # this invocation's rows: records whose run trained with exactly the row's config
    for fraction, method, ablation, row_overrides in jobs:
        if args.only and not any(o in f"{method}/{ablation}" for o in args.only):
            continue
        for seed in args.seeds:
            subset = [f"data.labeled_fraction={fraction}", "data.split_mode=random"] if fraction < 1.0 else []
            seeds = [f"train.seed={seed}", f"data.split_seed={seed}"]
            prefix = f"ssl_{method}_{ablation.replace(' ', '-')}_f{fraction:g}_s{seed}"
            record = results.row(
                config=CONFIG,
                overrides=[*quick, *subset, *row_overrides, *seeds, *args.extra],
                name=lambda steps: prefix + ("_quick" if args.quick else f"_{steps}steps" + name_part(args.extra)),  # noqa: B023
                labels={"method": method, "ablation": ablation, "labeled_fraction": fraction, "seed": seed,
                        "extra": args.extra},
                table_only=args.table_only,
            )  # fmt: skip
            current += [record] if record else []
    # records of other configs, budgets and --extra overrides stay in the file, not in this table
    print(summary_table(current, ["labeled_fraction", "method", "ablation"]))
    if not current:
        return  # nothing recorded with this config: leave any older picture alone
    if not args.quick:
        current += gap_table_baselines(fractions, args.seeds, args.extra)
    steps = resolved_config(CONFIG, [*quick, *args.extra])["train"]["steps"]
    plot_curves(
        curve_panels(current), out.with_name(f"{name}_{steps}_steps{name_part(args.extra)}_curves.png")
    )


def gap_table_baselines(fractions: list[float], seeds: list[int], extra: list[str]) -> list[dict]:
    """Supervised runs of benchmarks/supervised_synthetic.py at these budgets and with all labels, trained with
    this table's base config, budget, seeds and labelled subsets (the runs that script makes with --extra)."""
    gap_table = ResultsFile(REPO / "benchmarks" / "results" / "supervised_synthetic.json")
    found = []
    for fraction in {*fractions, 1.0}:
        subset = [f"data.labeled_fraction={fraction}", "data.split_mode=random"] if fraction < 1.0 else []
        for seed in seeds:
            overrides = [*subset, f"train.seed={seed}", f"data.split_seed={seed}", *extra]
            record = gap_table.find(SUPERVISED_CONFIG, overrides)
            if record is not None and record.get("curve"):
                found.append({**record, "ablation": "(gap table)"})
    return found


def curve_panels(records: list[dict]) -> dict[str, list[tuple[str, list]]]:
    """One panel per labelled fraction, each with the all-labels runs as the upper bound."""
    fractions = sorted({r["labeled_fraction"] for r in records if r["labeled_fraction"] < 1.0})
    return {
        f"{fraction:.0%} labelled": [
            (f"{r['method']} {r['ablation']}{' ALL labels' if r['labeled_fraction'] == 1.0 else ''} s{r['seed']}",
             r["curve"])
            for r in records
            if r["labeled_fraction"] in (fraction, 1.0) and r.get("curve")
        ]
        for fraction in fractions
    }  # fmt: skip


if __name__ == "__main__":
    main()
