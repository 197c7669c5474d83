"""Which pseudo-label source would a reviewer need to add what the teacher lacks? Measured offline on one run.

    python benchmarks/reviewer_candidates.py runs/<run>/checkpoints/step_*.pt [--people 1024]

The arguments are checkpoints of ONE semi-supervised run in training order: the ``checkpoints/step_*.pt`` that a
run trained with ``train.keep_checkpoints=true`` keeps every ``checkpoint_every`` steps. On unlabelled people whose
ground truth training never reads, it measures the PCK@0.1 of the pseudo-keypoints of candidate sources at the
last checkpoint:
- ``teacher``: the teacher at the last step (what TRS learns from);
- ``teacher_flip``: its heatmaps averaged with those of the mirrored crop (flip ensemble, one more forward);
- ``student``: the student at the last step;
- ``teacher_step_N``: each earlier teacher alone (keypoints it gets right that the last teacher gets wrong were
  learnt and then forgotten: what the method's motivation says a reviewer recovers);
- ``ensemble_k``: the mean heatmaps of the last k teachers (the reviewer store's 'periodic' prediction with
  the teacher itself in the store);
- ``weight_average_k``: one network whose weights are the mean of the last k teachers' (a slow average over
  time in weight space, as stochastic weight averaging);
and, for each, the keypoints it gets right where the teacher is wrong and the reverse. A reviewer can only help
where it is right and the teacher is wrong more often than the reverse. Appends a record to
benchmarks/results/reviewer_candidates.json.
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
from pathlib import Path

import torch

from runs import REPO, comparable, load_records, save_records


class Sources:
    """Duck-types the ``pseudo_targets`` of a method for ``PseudoLabelProbe.collect``: one target per source, a
    source being a network, a list of networks (mean heatmaps) or ("flip", network) (flip-averaged heatmaps). Each
    network predicts once per batch however many sources share it."""

    def __init__(self, sources: dict[str, object], flip_index):
        self.sources = sources
        self.flip_index = torch.as_tensor(flip_index, dtype=torch.long)

    @torch.no_grad()
    def pseudo_targets(self, weak, weak_to_strong, flipped, people=None):
        from trspose.evaluation.inference import predict_heatmaps
        from trspose.methods.pseudo_labels import make_pseudo_target

        predicted: dict[int, torch.Tensor] = {}

        def heatmaps_of(net: torch.nn.Module) -> torch.Tensor:
            if id(net) not in predicted:
                predicted[id(net)] = net(weak).heatmaps.float()
            return predicted[id(net)]

        targets = {}
        for name, source in self.sources.items():
            if isinstance(source, tuple):  # ("flip", network)
                heatmaps = predict_heatmaps(source[1], weak, self.flip_index.numpy())
            elif isinstance(source, list):
                heatmaps = torch.stack([heatmaps_of(net) for net in source]).mean(dim=0)
            else:
                heatmaps = heatmaps_of(source)
            targets[name] = make_pseudo_target(heatmaps, weak_to_strong, flipped, self.flip_index, 0.0)
        targets["target"] = targets["teacher"]
        return targets


def averaged_weights(networks: list[torch.nn.Module]) -> torch.nn.Module:
    """One network whose floating-point weights and buffers are the mean of ``networks``' (integer buffers: the
    first's). BatchNorm running statistics are averaged too, not recomputed for the averaged weights as stochastic
    weight averaging does (``torch.optim.swa_utils.update_bn``)."""
    states = [net.state_dict() for net in networks]
    average = copy.deepcopy(networks[0])
    with torch.no_grad():
        for name, tensor in average.state_dict().items():
            if tensor.dtype.is_floating_point:
                tensor.copy_(torch.stack([state[name] for state in states]).mean(dim=0))
    return average.eval()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("snapshots", nargs="+")
    parser.add_argument("--people", type=int, default=1024)
    parser.add_argument(
        "--split", help="the run's split.json (default: beside the last snapshot's checkpoints folder)"
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "reviewer_candidates.json"))
    args = parser.parse_args()
    from pseudo_label_calibration import probe_of_run

    from trspose.config import config_from_dict
    from trspose.engine import build
    from trspose.engine.checkpoint import load_checkpoint
    from trspose.engine.run_folder import device_name
    from trspose.errors import TrsposeError
    from trspose.methods.ema import frozen_copy

    try:
        states = [load_checkpoint(Path(p)) for p in args.snapshots]
    except TrsposeError as error:
        sys.exit(f"error: {error}")
    cfg = config_from_dict(states[-1]["config"])
    if any(comparable(s["config"]) != comparable(states[-1]["config"]) for s in states):
        sys.exit("error: the snapshots come from runs with different configs; pass the step_*.pt of one run")
    if "teacher" not in states[-1]["method"]:
        sys.exit(f"error: {args.snapshots[-1]} has no teacher (method '{cfg.method.name}'); pass the checkpoints "
                 "of a mean-teacher or TRS run")  # fmt: skip
    # before the burn-in ends the teacher is the untrained copy it will be overwritten from: not a snapshot
    trained = [s for s in states if s["method"]["step"] >= cfg.method.burn_in_steps]
    steps = [s["step"] for s in trained]
    if not trained or steps != sorted(set(steps)):
        sys.exit(f"error: need checkpoints of one run after its burn-in ({cfg.method.burn_in_steps} steps), in "
                 f"training order with distinct steps; got steps {[s['step'] for s in states]}")  # fmt: skip
    cfg, probe = probe_of_run(
        trained[-1], Path(args.split or Path(args.snapshots[-1]).parent.parent / "split.json"), args.people
    )
    if probe is None:
        sys.exit("error: no unlabelled person with ground truth outside the labelled subset to measure on")
    template = build.build_model(build.bare_config(cfg))

    def network(weights: dict) -> torch.nn.Module:
        net = frozen_copy(template)
        net.load_state_dict(weights)
        return net

    teachers = [network(s["method"]["teacher"]) for s in trained]
    student = network({k.removeprefix("student."): v for k, v in trained[-1]["method"]["trainable"].items()})
    candidates: dict = {"teacher": teachers[-1], "teacher_flip": ("flip", teachers[-1]), "student": student}
    for step, older in zip(steps[:-1], teachers[:-1]):
        candidates[f"teacher_step_{step}"] = (
            older  # what it got right that the last teacher gets wrong: forgetting
        )
    for k in range(2, len(teachers) + 1):
        candidates[f"ensemble_{k}"] = teachers[-k:]
        candidates[f"weight_average_{k}"] = averaged_weights(teachers[-k:])
    found = probe.collect(Sources(candidates, build.keypoint_spec(cfg).flip_index()), torch.device("cpu"))
    seen = found.labeled
    if not seen.any():
        sys.exit("error: the measured people have no labelled keypoints")
    teacher = found.hit["teacher"][seen]
    rows = {}
    for name in candidates:
        hit = found.hit[name][seen]
        rows[name] = {
            "pck": 100.0 * hit.mean(),
            "right_where_teacher_wrong": 100.0 * (hit & ~teacher).mean(),
            "wrong_where_teacher_right": 100.0 * (~hit & teacher).mean(),
        }
    record = {
        "snapshots": args.snapshots, "steps": steps, "run": cfg.name, "people": len(probe.dataset.instances),
        "labelled_keypoints": int(seen.sum()), "device": device_name(torch.device("cpu")),
        "command": shlex.join(["python", *sys.argv]), "sources": rows,
    }  # fmt: skip
    print(f"{cfg.name}, steps {steps}, {record['people']} people")
    print("source | PCK@0.1 % | right where teacher wrong % | wrong where teacher right %")
    for name, row in rows.items():
        print(f"  {name:<20} {row['pck']:6.1f} {row['right_where_teacher_wrong']:6.1f} "
              f"{row['wrong_where_teacher_right']:6.1f}")  # fmt: skip
    out = Path(args.out)
    save_records([*load_records(out), record], out)


if __name__ == "__main__":
    main()
