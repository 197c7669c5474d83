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
import dataclasses
import shlex
import sys
from pathlib import Path

import torch

from runs import REPO, load_records, save_records


class Sources:
    """Duck-types the ``pseudo_targets`` of a method for ``PseudoLabelProbe.collect``: one target per source."""

    def __init__(self, networks: dict[str, torch.nn.Module | list[torch.nn.Module]], flip_index):
        self.networks = networks
        self.flip_index = torch.as_tensor(flip_index, dtype=torch.long)

    @torch.no_grad()
    def pseudo_targets(self, weak, weak_to_strong, flipped):
        from trspose.engine.inference import predict_heatmaps
        from trspose.methods.pseudo_labels import make_pseudo_target

        targets = {}
        for name, networks in self.networks.items():
            if name.endswith("_flip"):
                heatmaps = predict_heatmaps(networks, weak, self.flip_index.numpy())
            else:
                group = networks if isinstance(networks, list) else [networks]
                heatmaps = torch.stack([net(weak).heatmaps.float() for net in group]).mean(dim=0)
            targets[name] = make_pseudo_target(heatmaps, weak_to_strong, flipped, self.flip_index, 0.0)
        targets["target"] = targets["teacher"]
        return targets


def averaged_weights(networks: list[torch.nn.Module]) -> torch.nn.Module:
    average = copy.deepcopy(networks[0])
    with torch.no_grad():
        for name, tensor in average.state_dict().items():
            if tensor.dtype.is_floating_point:
                tensor.copy_(torch.stack([net.state_dict()[name] for net in networks]).mean(dim=0))
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
    args = parser.parse_args()
    from trspose.config import config_from_dict
    from trspose.data.sources import load_instances
    from trspose.engine import build
    from trspose.engine.checkpoint import load_checkpoint
    from trspose.engine.run_folder import device_name
    from trspose.methods.ema import frozen_copy

    torch.set_grad_enabled(False)
    states = [load_checkpoint(Path(p)) for p in args.snapshots]
    steps = [s["step"] for s in states]
    if steps != sorted(steps) or len(set(steps)) != len(steps):
        sys.exit(
            f"error: the snapshots must be of one run in training order with distinct steps, got steps {steps}"
        )
    last = states[-1]
    cfg = config_from_dict(last["config"])
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, pseudo_label_people=args.people))
    bare = build.bare_config(cfg)
    template = build.build_model(bare)

    def network(weights: dict) -> torch.nn.Module:
        net = frozen_copy(template)
        net.load_state_dict(weights)
        return net

    teachers = [network(s["method"]["teacher"]) for s in states]
    student = network({k.removeprefix("student."): v for k, v in last["method"]["trainable"].items()})
    candidates: dict = {"teacher": teachers[-1], "teacher_flip": teachers[-1], "student": student}
    for step, older in zip(steps[:-1], teachers[:-1]):
        candidates[f"teacher_step_{step}"] = (
            older  # what it got right that the last teacher gets wrong: forgetting
        )
    for k in range(2, len(teachers) + 1):
        candidates[f"ensemble_{k}"] = teachers[-k:]
        candidates[f"weight_average_{k}"] = averaged_weights(teachers[-k:])
    spec = build.keypoint_spec(cfg)
    files = build.resolve_data(cfg, progress=False)
    train = load_instances(files, spec, "train")
    from trspose.io import read_json

    split = read_json(Path(args.split or Path(args.snapshots[-1]).parent.parent / "split.json"), "split file")
    labelled = set(split["labeled_ann_ids"])
    probe = build.pseudo_label_probe(cfg, build.unlabeled_people(cfg, files, train),
                                     [inst for inst in train if inst.ann_id in labelled])  # fmt: skip
    found = probe.collect(Sources(candidates, spec.flip_index()), torch.device("cpu"))
    seen = found.labelled
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
    out = REPO / "benchmarks" / "results" / "reviewer_candidates.json"
    save_records([*load_records(out), record], out)


if __name__ == "__main__":
    main()
