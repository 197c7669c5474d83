"""Semi-supervised results table on the synthetic dataset: every method and ablation at equal budget.

    python benchmarks/ssl_synthetic.py                 # full table (hours on 2 CPU cores; see BENCHMARKS.md)
    python benchmarks/ssl_synthetic.py --quick         # minutes: tiny dataset, few steps, one budget
    python benchmarks/ssl_synthetic.py --table-only    # no training: every protocol's tables and curves
    python benchmarks/ssl_synthetic.py --protocol NAME # train (or with --table-only show) one protocol's table
    python benchmarks/ssl_synthetic.py --extra train.steps=2000   # the same table at another budget (own rows)

Each row trains configs/trs_lite0_fpn_128x96_synthetic.yaml with the overrides below, so all rows share the data,
model, input size, augmentation, schedule and the number of optimiser steps with the same labelled and unlabelled
batch sizes. A protocol (PROTOCOLS) is the recipe and budget of a whole table: the first is what the config trains;
an earlier one is kept printable by the overrides that restore its recipe, which its commands show. Records go to
benchmarks/results/ssl_synthetic.json; learning curves (validation AP against step, from each run's metrics.jsonl;
each row's mean over its seeds in a band from their min to max), one picture per labelled fraction, to
benchmarks/results/ssl_synthetic_<steps>_steps_<fraction>_curves.png (redrawn only when the protocol's --fractions
and the default --seeds and --third-seed show the whole table). The supervised rows are the runs of
benchmarks/supervised_synthetic.py (the gap table) when it has them; a row the table has not recorded takes a recipe
probe's run of its config (benchmarks/ssl_recipe_probes.py; for a supervised row, up to the keys supervised training
never reads). Every row trains with --seeds (0 and 1). The main rows (supervised, mean teacher, dual networks, TRS)
run at every budget of --fractions and get a third seed at the lowest of them; the ablations (each protocol's own
choice of ROWS) run at that lowest budget only. A second table pairs each semi-supervised row with supervised, mean
teacher and TRS seed by seed (each seed draws its own labelled subset) and gives the share of the
supervised-to-all-labels gap it closes; a third gives each row's network passes per step and its end-of-training
pseudo-label quality (``pseudo_quality/*`` of the last evaluation: PCK of the teacher's, reviewer's and learned
target's keypoints on unlabelled people with hidden ground truth, kept share and precision of the confidence mask),
a fourth each row's command, seeds and devices. A row whose run was interrupted resumes from its last checkpoint
when the same command runs again.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass

from runs import (
    REPO,
    ResultsFile,
    commands_table,
    find_record,
    markdown_table,
    name_part,
    plot_curves,
    resolved_config,
    row_groups,
    summary_table,
)

CONFIG = "configs/trs_lite0_fpn_128x96_synthetic.yaml"
SUPERVISED_CONFIG = "configs/supervised_lite0_fpn_128x96_synthetic.yaml"  # CONFIG's base
NO_MFL = "model.mfl_levels=[]"
ROW_KEYS = ["labeled_fraction", "method", "ablation"]  # what makes a row of the table; seeds group within it

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
    # a time constant of 500 steps (the teacher's: 100): the default 0.9998 (5,000 steps) suits long runs, and after
    # this table's 1,500 steps past the burn-in would still hold 74 % of the burn-in network, 0.998 holds 5 %
    ("trs", "reviewer slow EMA", ["method.reviewer.policy=slow_ema", "method.reviewer.momentum=0.998"]),
    # each unlabelled person's most confident pseudo-keypoints so far, where the teacher is less sure
    ("trs", "reviewer memory", ["method.reviewer.policy=memory"]),
]
# How a supervised row of this table differs from the gap table's run of the same budget and seed: validation
# every 250 steps instead of 500, and method keys that only the semi-supervised methods read.
SUPERVISED_ROW_DIFFERS = {
    "train.eval_every", "method.burn_in_steps", "method.confidence_threshold", "method.ema_momentum",
    "method.rampup_steps", "data.strong_view.blur_sigma",
}  # fmt: skip
UPPER_BOUND = ("supervised", "all labels", ["method.name=supervised", NO_MFL])
# The rows whose comparison is the table's point: the only ones at the higher budgets, and with a third seed at
# the lowest. The ablations run at the lowest budget, where the semi-supervised gain is largest.
MAIN_ROWS = {("supervised", "-"), ("mean_teacher", "-"), ("dual", "-"), ("trs", "full")}
# The whole table: the seeds of every row, and the main rows' third seed at the lowest budget.
DEFAULT_SEEDS, DEFAULT_THIRD_SEED = [0, 1], 2


@dataclass(frozen=True)
class Protocol:
    """A recipe and budget the whole table is trained at. The first of PROTOCOLS is what CONFIG trains; an earlier
    one stays printable through ``extra``, the overrides that restore its recipe on top of today's CONFIG (records
    are found by the config their runs trained with, so its rows keep counting)."""

    name: str
    """How the table heads it."""
    extra: tuple[str, ...]
    """Overrides on top of CONFIG for every row: none for the shipped config's protocol."""
    fractions: tuple[float, ...]
    """Its labelled budgets; the ablations and the third seed at the lowest."""
    ablations: tuple[str, ...]
    """The TRS rows of ROWS it trains beside MAIN_ROWS, by ablation label, at the lowest budget."""
    tag: str = ""
    """Added to run and picture names, which otherwise differ by the step count only."""

    def __post_init__(self) -> None:
        known = {ablation for method, ablation, _ in ROWS if (method, ablation) not in MAIN_ROWS}
        if unknown := set(self.ablations) - known:
            raise ValueError(
                f"protocol {self.name!r}: no such ablation row {sorted(unknown)}; ROWS has {sorted(known)}"
            )

    def rows(self) -> list[tuple[str, str, list[str]]]:
        """Its rows of ROWS: the main rows and its ablations."""
        return [row for row in ROWS if row[:2] in MAIN_ROWS or (row[0] == "trs" and row[1] in self.ablations)]


PROTOCOLS = [
    # 2 % labels, where supervised training reaches about half of all labels (as the literature's COCO-1K teacher
    # does), and 4,000 steps: the recipe probes' choice (BENCHMARKS.md, "Recipe probes")
    Protocol(
        "2 % labels, 4,000 steps",
        (),
        (0.02,),
        ("no reviewer", "no MFL", "no Keypoint-Mix", "reviewer memory"),
    ),
    Protocol(
        "2,000 steps",
        ("train.steps=2000",),
        (0.01, 0.05),
        ("no reviewer", "no MFL", "no Keypoint-Mix", "reviewer periodic", "reviewer slow EMA"),
    ),
]
PROTOCOL_2000 = next(p for p in PROTOCOLS if p.name == "2,000 steps")  # the recipe probes' "today"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--protocol", choices=[p.name for p in PROTOCOLS], default=None,
        help=f"the table to train or show (default: train '{PROTOCOLS[0].name}', show every protocol's)",
    )  # fmt: skip
    parser.add_argument("--fractions", type=float, nargs="+", help="default: the protocol's")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=DEFAULT_SEEDS,
        help="seeds of every row; the main rows at the lowest budget also get --third-seed",
    )  # fmt: skip
    parser.add_argument("--third-seed", type=int, default=DEFAULT_THIRD_SEED, help="-1: none")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--only", nargs="*", default=[], help="run only rows whose 'method/ablation' contains one of these"
    )
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="train nothing: print the tables and redraw the curves from the records",
    )
    parser.add_argument(
        "--extra",
        nargs="*",
        default=[],
        help="more dotted overrides for every run, e.g. train.steps=2000 (own rows)",
    )
    args = parser.parse_args()
    chosen = [p for p in PROTOCOLS if p.name == args.protocol] if args.protocol else PROTOCOLS
    if not args.table_only or args.quick:
        chosen = chosen[:1]  # trains one protocol: --protocol's, else the shipped config's
    for protocol in chosen:
        if len(chosen) > 1:
            print(f"\n## Protocol: {protocol.name}\n")
        protocol_table(protocol, args)


def protocol_table(protocol: Protocol, args: argparse.Namespace) -> None:
    """Train what the protocol's table lacks (unless --table-only), print its tables, redraw its curves."""
    name = "ssl_synthetic_quick" if args.quick else "ssl_synthetic"
    out = REPO / "benchmarks" / "results" / f"{name}.json"
    quick = [
        "data.synthetic_size=tiny", "train.steps=40", "train.warmup_steps=5", "train.eval_every=10",
        "train.checkpoint_every=40", "method.burn_in_steps=10", "method.rampup_steps=10", "train.batch_size=8",
        "train.unlabeled_batch_size=8", "data.holdout_fraction=0.3",
    ] if args.quick else []  # fmt: skip
    # the protocol's overrides stand for its config: first, so that every row's own overrides (and --quick's) win
    base = [] if args.quick else list(protocol.extra)
    fractions = [0.3] if args.quick else (args.fractions or list(protocol.fractions))
    results = ResultsFile(out)
    # runs trained for other tables that are rows of this one: the gap table's supervised runs, the recipe probes'
    gap_table = ResultsFile(REPO / "benchmarks" / "results" / "supervised_synthetic.json")
    probes = ResultsFile(REPO / "benchmarks" / "results" / "ssl_recipe_probes.json")
    # each row's record (recorded_row), else train it; --only limits what is trained, not what is shown
    current = []
    third_seed = -1 if args.quick else args.third_seed
    for fraction, method, ablation, row_overrides, row_seeds in table_jobs(
        protocol.rows(), fractions, args.seeds, third_seed
    ):
        selected = not args.only or any(o in f"{method}/{ablation}" for o in args.only)
        for seed in row_seeds:
            subset, seeds = subset_overrides(fraction), seed_overrides(seed)
            overrides = [*base, *quick, *subset, *row_overrides, *seeds, *args.extra]
            labels = {"method": method, "ablation": ablation, "labeled_fraction": fraction, "seed": seed,
                      "extra": args.extra}  # fmt: skip
            others = (None, None) if args.quick else (gap_table, probes)
            record = recorded_row(results, *others, overrides, labels)
            prefix = f"ssl_{method}_{ablation.replace(' ', '-')}_f{fraction:g}_s{seed}"
            if record is None and selected:
                record = results.row(
                    config=CONFIG,
                    overrides=overrides,
                    name=lambda steps: prefix + ("_quick" if args.quick else f"_{steps}steps{protocol.tag}" + name_part(args.extra)),  # noqa: B023
                    labels=labels,
                    table_only=args.table_only,
                )  # fmt: skip
            current += [record] if record else []
    # records of other configs, budgets and --extra overrides stay in the file, not in this table
    shown = [reproducing(r, base) for r in current]
    print(summary_table(shown, ROW_KEYS))
    print("\n" + paired_table(shown))
    print("\n" + pseudo_label_table(shown))
    print("\n" + commands_table(shown, ROW_KEYS))
    if not any(r["method"] != "supervised" for r in current):
        return  # no semi-supervised row recorded with this config: leave any older picture alone
    if not args.quick and not whole_table(protocol, fractions, args.seeds, args.third_seed):
        print("\ncurves not redrawn: --fractions / --seeds / --third-seed show part of the table; "
              "--table-only without them redraws the pictures")  # fmt: skip
        return
    steps = resolved_config(CONFIG, [*base, *quick, *args.extra])["train"]["steps"]
    for fraction, panel in curve_panels(current).items():  # one picture per labelled budget
        picture = f"{name}_{steps}_steps{protocol.tag}{name_part(args.extra)}_{fraction:g}_curves.png"
        plot_curves({panel[0]: panel[1]}, out.with_name(picture), seed_bands=True)


def subset_overrides(fraction: float) -> list[str]:
    """The overrides of a seeded random labelled subset of ``fraction`` (none for all labels)."""
    return [f"data.labeled_fraction={fraction}", "data.split_mode=random"] if fraction < 1.0 else []


def seed_overrides(seed: int) -> list[str]:
    """A row's seed: initialisation and augmentation, and the labelled subset it draws."""
    return [f"train.seed={seed}", f"data.split_seed={seed}"]


def reproducing(record: dict, base: list[str] | tuple[str, ...]) -> dict:
    """``record`` with a command that trains its row today: runs of an earlier protocol were trained by CONFIG before
    it changed, so their command gains the protocol's overrides of the keys it does not set, after ``output_dir=``.
    Runs of another config (the gap table's supervised runs) keep theirs."""
    words = shlex.split(record["command"])
    own = {w.split("=", 1)[0] for w in words if "=" in w}
    missing = [o for o in base if o.split("=", 1)[0] not in own]
    if record.get("config") != CONFIG or not missing:
        return record
    at = next(i for i, w in enumerate(words) if w.startswith("output_dir=")) + 1
    return {**record, "command": shlex.join([*words[:at], *missing, *words[at:]])}


def whole_table(protocol: Protocol, fractions: list[float], seeds: list[int], third_seed: int) -> bool:
    """Whether these options select the protocol's whole table (its budgets, the default seeds), so that its pictures
    may be redrawn: a part of it (one seed, one budget) would overwrite them with a subset under the same file name."""
    whole = (sorted(protocol.fractions), DEFAULT_SEEDS, DEFAULT_THIRD_SEED)
    return (sorted(fractions), sorted(seeds), third_seed) == whole


def table_jobs(
    rows: list[tuple[str, str, list[str]]], fractions: list[float], seeds: list[int], third_seed: int
) -> list[tuple[float, str, str, list[str], list[int]]]:
    """The table's ``rows``, (labelled fraction, method, ablation, overrides, seeds): every row at the lowest
    budget, the main rows at the others, the upper bound once; the main rows at the lowest budget add
    ``third_seed`` (-1: none)."""
    lowest = min(fractions)
    jobs = []
    for fraction in fractions:
        for method, ablation, overrides in rows:
            main_row = (method, ablation) in MAIN_ROWS
            if fraction == lowest or main_row:
                extra = [third_seed] if fraction == lowest and main_row and third_seed >= 0 else []
                jobs.append((fraction, method, ablation, overrides, [*seeds, *extra]))
    return [*jobs, (1.0, *UPPER_BOUND, list(seeds))]


def recorded_row(
    results: ResultsFile,
    gap_table: ResultsFile | None,
    probes: ResultsFile | None,
    overrides: list[str],
    labels: dict,
) -> dict | None:
    """The record that stands for one row and seed (``labels``) of the table, trained with CONFIG and ``overrides``.
    In this order: for a supervised row, the gap table's run of it; the table's own record; a recipe probe's run of
    it (a probe whose change the protocol adopted). A supervised row takes another table's run whose config differs
    from the row's only in SUPERVISED_ROW_DIFFERS (``supervised_record``), the others only one of exactly the row's
    config. Another table's record comes under the row's labels. ``None`` for a file: do not look there (--quick)."""
    wanted = resolved_config(CONFIG, overrides)
    supervised = labels["method"] == "supervised"
    if supervised and gap_table is not None and (found := supervised_record(gap_table, wanted)) is not None:
        return {**found, **labels}  # the same row: seeds group together
    if (record := find_record(results.known, wanted)) is not None:
        return record
    if probes is None:
        return None
    found = supervised_record(probes, wanted) if supervised else find_record(probes.known, wanted)
    return None if found is None else {**found, **labels}


def supervised_record(other: ResultsFile, wanted: dict) -> dict | None:
    """The latest run of another table (benchmarks/supervised_synthetic.py's gap table, a recipe probe), recorded
    with its learning curve, that is the supervised row whose config is ``wanted``: its config differs from the
    row's only in SUPERVISED_ROW_DIFFERS. A protocol whose schedule the other table did not train finds none."""
    wanted = without_keys(wanted, SUPERVISED_ROW_DIFFERS)
    for record, config in reversed(other.known):
        if (
            config is not None
            and record.get("curve")
            and without_keys(config, SUPERVISED_ROW_DIFFERS) == wanted
        ):
            return record
    return None


def without_keys(config: dict, dotted: set[str]) -> dict:
    """A copy of a nested config dict without the ``dotted`` keys ("section.key", "section.sub.key")."""
    kept = {}
    for key, value in config.items():
        if key in dotted:
            continue
        inner = {d.split(".", 1)[1] for d in dotted if d.startswith(key + ".")}
        kept[key] = without_keys(value, inner) if isinstance(value, dict) else value
    return kept


# Each seed draws its own labelled subset (split seed = seed), which moves AP more than most methods differ: a row
# is also compared with these reference rows seed by seed, on the seeds both have.
REFERENCES = [("supervised", "-"), ("mean_teacher", "-"), ("trs", "full")]


def paired_table(records: list[dict]) -> str:
    """Per semi-supervised row: its AP minus each reference row's at the same labelled fraction, seed by seed
    (mean ± sd over the seeds both have), and the share of the gap between supervised and all labels that it
    closes: its mean paired gain over supervised, over the all-labels row's mean (all its seeds) minus the
    supervised mean on the paired seeds ('-' without an all-labels row or a positive gap)."""
    import statistics

    groups = row_groups(records, ROW_KEYS)
    upper = [r["ap"] for r in groups.get((1.0, *UPPER_BOUND[:2]), [])]
    rows = []
    for (fraction, method, ablation), group in groups.items():
        if method == "supervised" or fraction == 1.0:
            continue
        gap_closed, cells = "-", []
        for reference in REFERENCES:
            ap_of = {r["seed"]: r["ap"] for r in groups.get((fraction, *reference), [])}
            paired = [r for r in group if r["seed"] in ap_of]
            if reference == (method, ablation) or not paired:
                cells.append("-")
                continue
            diffs = [r["ap"] - ap_of[r["seed"]] for r in paired]
            sd = f" ± {statistics.stdev(diffs):.1f}" if len(diffs) > 1 else ""
            cells.append(f"{statistics.mean(diffs):+.1f}{sd} ({len(diffs)})")
            gap = statistics.mean(upper) - statistics.mean(ap_of[r["seed"]] for r in paired) if upper else 0.0
            if reference == REFERENCES[0] and gap > 0:
                gap_closed = f"{100 * statistics.mean(diffs) / gap:.0f} %"
        rows.append([f"{fraction:.0%}", method, ablation, gap_closed, *cells])
    heads = [f"AP - {m} {a.removeprefix('-')}".strip() + " (seeds)" for m, a in REFERENCES]
    return markdown_table([*ROW_KEYS, "gap closed", *heads], rows)


# Network passes per step, crops per pass (32 labelled + 32 unlabelled): forward+backward of the trained network(s),
# forward-only of the teacher / reviewer on the weak views. Equal steps are equal compute only within a line.
PASSES = {
    "supervised": "F+B 32",
    "mean_teacher": "F+B 64, F 32",
    "dual": "2 x (F+B 64, F 32)",
    "trs": "F+B 64, F 32, reviewer F 32",
    "trs no reviewer": "F+B 64, F 32",
    "trs reviewer memory": "F+B 64, F 32",  # the memory is no network
}


def pseudo_label_table(records: list[dict]) -> str:
    """Per row: network passes per step and the end-of-training pseudo-label quality (mean over seeds, percent):
    PCK@0.1 of the teacher's, the reviewer's and the learned target's keypoints on unlabelled people, the kept
    fraction and the precision of the confidence mask, and where the reviewer is right while the teacher is not;
    '(n of m seeds)' where only n of the row's m records have the measure (``reviewer_measures``)."""
    import statistics

    names = ["pck_teacher", "pck_reviewer", "pck_target", "kept_fraction", "mask_precision",
             "reviewer_right_teacher_wrong", "teacher_right_reviewer_wrong"]  # fmt: skip
    rows = []
    for (fraction, method, ablation), group in row_groups(records, ROW_KEYS).items():
        passes = PASSES.get(f"{method} {ablation}", PASSES.get(method, "?"))
        values = []
        for name in names:
            found = [reviewer_measures(r).get(name) for r in group]
            found = [v for v in found if v is not None]
            seeds = f" ({len(found)} of {len(group)} seeds)" if 0 < len(found) < len(group) else ""
            values.append(f"{statistics.mean(found):.1f}{seeds}" if found else "-")
        rows.append([f"{fraction:.0%}", method, ablation, passes, *values])
    return markdown_table([*ROW_KEYS, "passes/step", *names], rows)


def reviewer_measures(record: dict) -> dict[str, float]:
    """A record's ``pseudo_quality``, less the reviewer's measures where they describe a fresh copy of the teacher.
    Records made before the trainer measured first and refreshed the reviewer after (those without
    ``pseudo_quality_of``) measured a reviewer that an evaluation had just replaced by the teacher ('best' at a new
    best, 'periodic' at every evaluation): it shows as no keypoint right for one and wrong for the other."""
    quality = dict(record.get("pseudo_quality") or {})
    copied = all(
        quality.get(f"{a}_right_{b}_wrong") == 0.0
        for a, b in (("reviewer", "teacher"), ("teacher", "reviewer"))
    )
    if copied and "pseudo_quality_of" not in record:
        for name in ("pck_reviewer", "reviewer_right_teacher_wrong", "teacher_right_reviewer_wrong"):
            quality.pop(name)
    return quality


def curve_panels(records: list[dict]) -> dict[float, tuple[str, list[tuple[str, list]]]]:
    """Per labelled fraction: its title and the lines of its picture (label with seed, curve), the all-labels
    runs included as the upper bound."""
    fractions = sorted({r["labeled_fraction"] for r in records if r["labeled_fraction"] < 1.0})
    return {
        fraction: (f"{fraction:.0%} labelled: validation AP", [
            (" ".join(part for part in (r["method"], r["ablation"].removeprefix("-").strip(), f"s{r['seed']}") if part),
             r["curve"])
            for r in records
            if r["labeled_fraction"] in (fraction, 1.0) and r.get("curve")
        ])
        for fraction in fractions
    }  # fmt: skip


if __name__ == "__main__":
    main()
