"""A hand-written pose sampler: a mixture of modes with per-joint anatomical ranges.

anny ships no pose prior, and uniform random angles give broken bodies, so each person first draws a *mode*
(standing, walking, ...) and then every joint angle uniformly from that mode's range (degrees). The ranges
below are the sampler's documentation; unlisted joints take the ``standing`` range.

Angle conventions (anny ``local-ref`` deltas, rotations about the bone head in the world axes of the rest
A-pose: X = person's left, Y = backwards, Z = up):
* ``shoulder_abduction``: 0 = rest A-pose (arm ~40 deg from vertical); -25 = arm along the body; 140 = raised.
* ``shoulder_flexion``: + = arm forward. ``hip_flexion``: + = thigh forward. ``knee``/``elbow``: flexion >= 0.
* ``spine_forward``: total bend over the five spine bones, + = forward.
Whole-body lying and the body yaw are applied later, in the scene, as a rigid transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODE_PROBABILITIES: dict[str, float] = {
    "standing": 0.15,
    "walking": 0.15,
    "running": 0.10,
    "arms_raised": 0.10,
    "reaching": 0.08,
    "sitting": 0.08,
    "squatting": 0.08,
    "bending": 0.08,
    "lying": 0.06,
    "wild": 0.12,
}
MODES = tuple(MODE_PROBABILITIES)

# Modes whose poses often make the body interpenetrate (limbs folded against the trunk): these, and only
# these, go through the (slower) exact self-intersection test; see collision.py.
# Measured share of bodies with > 12 colliding limb triangles (48-96 bodies per mode): squatting 0.23,
# arms raised 0.15, wild 0.10, bending 0.10, walking 0.08, sitting 0.08, reaching 0.04, standing 0.02,
# lying 0.0 (its limbs are not folded; it is tipped over only after the test).
RISKY_MODES = frozenset({"walking", "arms_raised", "sitting", "squatting", "bending", "reaching", "wild"})

Range = tuple[float, float]
STANDING: dict[str, Range] = {
    "spine_forward": (-10, 15), "spine_side": (-8, 8), "spine_twist": (-20, 20), "neck": (-10, 20),
    "head_turn": (-60, 60), "head_tilt": (-15, 15), "head_nod": (-20, 25),
    "shoulder_abduction": (-25, 10), "shoulder_flexion": (-30, 40), "shoulder_twist": (-30, 30),
    "elbow": (0, 60), "wrist_flexion": (-35, 35), "wrist_deviation": (-20, 20),
    "hip_flexion": (-10, 15), "hip_abduction": (-5, 15), "hip_twist": (-10, 20), "knee": (0, 15),
    "foot": (-10, 15), "gait": (0, 0),
}  # fmt: skip
MODE_RANGES: dict[str, dict[str, Range]] = {
    "standing": {},
    "walking": {"gait": (15, 35), "elbow": (5, 45), "hip_abduction": (-3, 6)},
    "running": {"gait": (30, 55), "elbow": (70, 110), "spine_forward": (5, 20), "knee": (10, 40)},
    "arms_raised": {"shoulder_abduction": (40, 150), "shoulder_flexion": (-20, 100), "elbow": (0, 120)},
    "reaching": {"spine_forward": (0, 35), "hip_flexion": (-5, 25)},  # + one arm forward, see _reach
    "sitting": {"hip_flexion": (70, 100), "knee": (0, 110), "shoulder_flexion": (0, 60), "elbow": (20, 100),
                "hip_abduction": (0, 25)},
    "squatting": {"hip_flexion": (70, 110), "knee": (80, 120), "spine_forward": (10, 35),
                  "hip_abduction": (5, 25), "shoulder_flexion": (0, 80), "elbow": (0, 90)},
    "bending": {"spine_forward": (35, 75), "hip_flexion": (0, 30), "knee": (0, 30), "shoulder_flexion": (0, 90)},
    "lying": {"shoulder_abduction": (-25, 120), "shoulder_flexion": (-20, 90), "elbow": (0, 110),
              "hip_flexion": (-10, 60), "knee": (0, 90), "hip_abduction": (0, 30)},
    "wild": {"shoulder_abduction": (-20, 140), "shoulder_flexion": (-40, 140), "elbow": (0, 140),
             "hip_flexion": (-20, 100), "hip_abduction": (0, 40), "knee": (0, 130), "spine_forward": (-20, 45),
             "spine_side": (-20, 20), "spine_twist": (-35, 35)},
}  # fmt: skip
SIDED = frozenset(k for k in STANDING if k.startswith(("shoulder", "elbow", "wrist", "hip", "knee", "foot")))


@dataclass
class PoseAngles:
    """Joint angles (degrees) for n people: shared joints (n,), sided joints (n, 2) for (left, right)."""

    modes: np.ndarray  # (n,) mode names
    angles: dict[str, np.ndarray]


def sample_modes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw n pose modes from MODE_PROBABILITIES."""
    probabilities = np.array(list(MODE_PROBABILITIES.values()))
    return np.array(MODES)[rng.choice(len(MODES), size=n, p=probabilities / probabilities.sum())]


def sample_angles(rng: np.random.Generator, modes: np.ndarray) -> PoseAngles:
    """Draw every joint angle uniformly from each person's mode range; couple the gait; add reaching arms."""
    n = len(modes)
    angles = {}
    for joint, default in STANDING.items():
        low = np.array([MODE_RANGES[m].get(joint, default)[0] for m in modes], float)
        high = np.array([MODE_RANGES[m].get(joint, default)[1] for m in modes], float)
        if joint in SIDED:
            low, high = low[:, None], high[:, None]
        angles[joint] = low + rng.uniform(0.0, 1.0, (n, 2) if joint in SIDED else (n,)) * (high - low)
    _apply_gait(rng, angles)
    _reach(rng, modes, angles)
    return PoseAngles(modes=modes, angles=angles)


def _apply_gait(rng: np.random.Generator, angles: dict[str, np.ndarray]) -> None:
    """Walking/running: legs swing in antiphase, each arm opposite to its leg, the rear knee bends."""
    amplitude = angles["gait"]
    phase = rng.uniform(-1.0, 1.0, len(amplitude)) * amplitude  # + = left leg forward
    swing = np.stack([phase, -phase], 1)
    angles["hip_flexion"] = angles["hip_flexion"] + swing
    angles["shoulder_flexion"] = angles["shoulder_flexion"] - 0.8 * swing
    angles["knee"] = angles["knee"] + 1.3 * np.clip(-swing, 0, None) * (amplitude[:, None] > 0)


def _reach(rng: np.random.Generator, modes: np.ndarray, angles: dict[str, np.ndarray]) -> None:
    """Reaching: one arm (random side) forward and up, almost straight."""
    for i in np.flatnonzero(modes == "reaching"):
        side = rng.integers(2)
        angles["shoulder_flexion"][i, side] = rng.uniform(60, 150)
        angles["shoulder_abduction"][i, side] = rng.uniform(-20, 40)
        angles["elbow"][i, side] = rng.uniform(0, 40)


def axis_rotations(axis: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotations by `degrees` (n,) about one unit `axis` (3,) (Rodrigues)."""
    theta = np.radians(np.asarray(degrees, np.float64))[:, None, None]
    a = np.asarray(axis, np.float64)
    cross = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(theta) * cross + (1 - np.cos(theta)) * (cross @ cross)


_X, _Y, _Z = np.eye(3)


def pose_matrices(body, pose: PoseAngles) -> np.ndarray:
    """(n, bones, 4, 4) float32 anny ``pose_parameters`` for the sampled angles."""
    a = pose.angles
    n = len(pose.modes)
    rotations = np.tile(np.eye(3), (n, body.num_bones, 1, 1))

    def put(bone: str, rotation: np.ndarray) -> None:
        rotations[:, body.bone_index[bone]] = rotation

    spine = axis_rotations(_Z, a["spine_twist"] / 5) @ axis_rotations(_Y, a["spine_side"] / 5)
    spine = spine @ axis_rotations(_X, a["spine_forward"] / 5)
    for bone in ("spine05", "spine04", "spine03", "spine02", "spine01"):
        put(bone, spine)
    put("neck01", axis_rotations(_X, a["neck"]))
    head = axis_rotations(_Z, a["head_turn"]) @ axis_rotations(_Y, a["head_tilt"])
    put("head", head @ axis_rotations(_X, a["head_nod"]))
    for column, (side, sign) in enumerate((("L", 1.0), ("R", -1.0))):
        _put_limbs(body, put, {k: v[:, column] for k, v in a.items() if k in SIDED}, side, sign)
    out = np.tile(np.eye(4, dtype=np.float32), (n, body.num_bones, 1, 1))
    out[..., :3, :3] = rotations
    return out


def _put_limbs(body, put, a: dict[str, np.ndarray], side: str, sign: float) -> None:
    """Arm and leg rotations of one side (sign +1 left, -1 right: mirror about the sagittal plane)."""
    abduction = a["shoulder_abduction"]
    arm = axis_rotations(_Z, sign * a["shoulder_twist"]) @ axis_rotations(_X, -a["shoulder_flexion"])
    put(f"upperarm01.{side}", arm @ axis_rotations(_Y, -sign * abduction))
    put(f"clavicle.{side}", axis_rotations(_Y, -sign * np.clip(abduction - 60, 0, None) * 0.25))
    elbow = np.clip(a["elbow"], 0, 145) - np.degrees(body.elbow_rest_angle[side])
    put(f"lowerarm01.{side}", axis_rotations(body.elbow_axis[side], elbow))
    put(f"wrist.{side}", axis_rotations(_X, a["wrist_flexion"]) @ axis_rotations(_Y, a["wrist_deviation"]))
    leg = axis_rotations(_Z, sign * a["hip_twist"]) @ axis_rotations(_Y, -sign * a["hip_abduction"])
    put(f"upperleg01.{side}", leg @ axis_rotations(_X, -a["hip_flexion"]))
    put(f"lowerleg01.{side}", axis_rotations(_X, np.clip(a["knee"], 0, 145)))
    put(f"foot.{side}", axis_rotations(_X, a["foot"]))
