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

from runs import (
    REPO,
    load_records,
    planned_steps,
    plot_curves,
    run_and_record,
    same_budget,
    save_records,
    summary_table,
    without_steps,
)

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
    records = load_records(out)
    jobs = [(f, *row) for f in fractions for row in ROWS] + [(1.0, *UPPER_BOUND)]
    steps = planned_steps(CONFIG, [*quick, *args.extra])  # every row at this budget
    for fraction, method, ablation, overrides in jobs:
        if args.only and not any(o in f"{method}/{ablation}" for o in args.only):
            continue
        for seed in args.seeds:
            labels = {"method": method, "ablation": ablation, "labeled_fraction": fraction, "seed": seed}
            labels["extra"] = args.extra
            key = {k: v for k, v in labels.items() if k != "extra"}
            if any(
                same_budget(r, CONFIG, steps, args.extra) and all(r[k] == v for k, v in key.items())
                for r in records
            ):
                continue
            if args.table_only:
                print(f"not recorded yet: {method}/{ablation}, {fraction:g} labels, seed {seed}")
                continue
            subset = [f"data.labeled_fraction={fraction}", "data.split_mode=random"] if fraction < 1.0 else []
            run_name = f"ssl_{method}_{ablation.replace(' ', '-')}_f{fraction:g}_s{seed}" + (
                "_quick"
                if args.quick
                else f"_{steps}steps" + "".join("_" + e.replace("=", "") for e in without_steps(args.extra))
            )
            record = run_and_record(
                config=CONFIG, name=run_name, output_dir="runs/benchmarks",
                overrides=[*quick, *subset, *overrides, f"train.seed={seed}", f"data.split_seed={seed}", *args.extra],
                labels=labels,
            )  # fmt: skip
            records.append(record)
            save_records(records, out)
            print(f"{run_name}: AP {record['ap']:.1f} ({record['wall_s']:.0f} s)", flush=True)
    # older configs, other budgets and other --extra overrides stay on record, not in this table
    current = [r for r in records if same_budget(r, CONFIG, steps, args.extra)]
    print(summary_table(current, ["labeled_fraction", "method", "ablation"]))
    if not args.quick:
        current += gap_table_baselines(fractions, steps, args.extra)
    budget = "".join("_" + e.replace("=", "") for e in without_steps(args.extra))
    plot_curves(curve_panels(current), out.with_name(f"{name}_{steps}_steps{budget}_curves.png"))


def gap_table_baselines(fractions: list[float], steps: int, extra: list[str]) -> list[dict]:
    """Supervised runs of benchmarks/supervised_synthetic.py at these budgets and with all labels: the same
    model, data, schedule, seeds and labelled subsets as the rows here (their config is this one's base)."""
    records = load_records(REPO / "benchmarks" / "results" / "supervised_synthetic.json")
    keep = [*fractions, 1.0]
    return [
        {**r, "ablation": "(gap table)"}
        for r in records
        if same_budget(r, SUPERVISED_CONFIG, steps, extra)
        and r["labeled_fraction"] in keep
        and r.get("curve")
    ]


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
