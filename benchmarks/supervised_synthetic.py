"""The labelled-data gap on the synthetic dataset: one model and schedule trained with all labels and with
about 5% and 1% of the labelled person instances, several seeds each, from ImageNet weights (the config's), plus
the same model from random initialisation (``--random-init-fractions``, all labels by default): the ablation
that shows what the ImageNet weights are worth.

    python benchmarks/supervised_synthetic.py                # the full table (see BENCHMARKS.md for the time)
    python benchmarks/supervised_synthetic.py --quick        # minutes: tiny dataset, few steps
    python benchmarks/supervised_synthetic.py --table-only   # no training: the table and curves from the records
    python benchmarks/supervised_synthetic.py --extra train.steps=2000   # another budget: its own rows

A row is (labelled fraction, seed); a record counts for it only if its run trained with exactly the row's resolved
config (so records from other budgets, other --extra overrides or an older config stay in the file, apart).

Writes benchmarks/results/supervised_synthetic.json (one record per run) and prints a markdown table.
A seed sets the initialisation, the augmentation stream and the random labelled subset.
"""

from __future__ import annotations

import argparse

from runs import (
    REPO,
    ResultsFile,
    curve_panels_by_config,
    name_part,
    plot_curves,
    resolved_config,
    summary_table,
)

CONFIG = "configs/supervised_lite0_fpn_128x96_synthetic.yaml"
RANDOM_INIT = "model.pretrained="  # the override that trains the config's model from random weights
ROW_KEYS = ("train.seed", "data.split_seed", "data.labeled_fraction", "data.split_mode")  # what a row sets


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.05, 0.01])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--random-init-fractions",
        type=float,
        nargs="*",
        default=[1.0],
        help="labelled fractions also trained from random initialisation (none: skip those rows)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny dataset and 60 steps: a smoke version")
    parser.add_argument("--out", default="benchmarks/results/supervised_synthetic.json")
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="train nothing: print the table and redraw the curves from the records",
    )
    parser.add_argument("--extra", nargs="*", default=[], help="more dotted overrides for every run")
    args = parser.parse_args()
    out = REPO / args.out if not args.quick else REPO / "benchmarks/results/supervised_synthetic_quick.json"
    results = ResultsFile(out)
    quick = (
        ["data.synthetic_size=tiny", "train.steps=60", "train.warmup_steps=10", "train.checkpoint_every=60"]
        if args.quick
        else []
    )
    current = []  # this invocation's rows: records whose run trained with exactly the row's config
    rows = [("imagenet", f) for f in args.fractions] + [("random", f) for f in args.random_init_fractions]
    for init, fraction in rows:
        for seed in args.seeds:
            subset = (
                [] if fraction >= 1.0 else [f"data.labeled_fraction={fraction}", "data.split_mode=random"]
            )
            weights = [RANDOM_INIT] if init == "random" else []
            suffix = ("_random_init" if weights else "") + ("_quick" if args.quick else name_part(args.extra))
            record = results.row(
                config=CONFIG,
                overrides=[
                    *quick,
                    *subset,
                    f"train.seed={seed}",
                    f"data.split_seed={seed}",
                    *weights,
                    *args.extra,
                ],
                name=lambda steps: f"gap_f{fraction:g}_s{seed}_{steps}steps{suffix}",  # noqa: B023 (called at once)
                labels={
                    "method": "supervised",
                    "init": init,
                    "labeled_fraction": fraction,
                    "seed": seed,
                    "extra": args.extra,
                },
                table_only=args.table_only,
            )
            current += [record] if record else []
    # records of other configs, budgets and --extra overrides stay in the file, not in this table
    print(summary_table(current, ["init", "labeled_fraction", "num_labeled", "steps"]))
    drawn = [r for r in results.records if r["config"] == CONFIG and r.get("curve")]
    # a panel per budget and --extra: the seeds and labelled subsets of its rows together
    panels = curve_panels_by_config(
        drawn,
        base=resolved_config(CONFIG, []),
        row_keys=ROW_KEYS,
        label=lambda r: (
            f"{'random init, ' if r.get('init') == 'random' else ''}{r['labeled_fraction']:.0%} labels s{r['seed']}"
        ),
    )
    plot_curves(panels, out.with_name(out.stem + "_curves.png"))


if __name__ == "__main__":
    main()
