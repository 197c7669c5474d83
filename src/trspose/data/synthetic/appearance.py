"""Per-person appearance: skin tone, hair, and clothing colours with procedural textures.

Clothing follows the vertex regions of body.py (shirt, sleeves, trousers, shoes, hair cap). Left and right
always share colours, so limbs are not colour-coded by side. Textures (stripes, checks, smooth noise) are
functions of the *rest-pose* vertex position, so they stick to the body when it moves.
"""

from __future__ import annotations

import numpy as np

from trspose.data.synthetic.body import REGIONS

SKIN_TONES = np.array(
    [[0.96, 0.80, 0.68], [0.90, 0.70, 0.55], [0.78, 0.57, 0.42], [0.62, 0.43, 0.30], [0.45, 0.30, 0.20],
     [0.32, 0.21, 0.14]]
)  # fmt: skip
HAIR_COLOURS = np.array(
    [[0.06, 0.05, 0.04], [0.22, 0.13, 0.07], [0.45, 0.30, 0.15], [0.78, 0.66, 0.42], [0.55, 0.55, 0.55],
     [0.50, 0.18, 0.08]]
)  # fmt: skip
PATTERNS = ("plain", "stripes", "checks", "noise")
SLEEVES = {"long": 0.40, "short": 0.40, "none": 0.20}
LEGWEAR = {"trousers": 0.60, "shorts": 0.25, "skirt": 0.15}


def random_colour(rng: np.random.Generator, dark: bool = False) -> np.ndarray:
    """An RGB colour in [0, 1], often desaturated like real clothing."""
    colour = rng.uniform(0.05, 0.95, 3)
    grey = colour.mean()
    colour = grey + (colour - grey) * rng.uniform(0.2, 1.0)
    return colour * (rng.uniform(0.2, 0.6) if dark else 1.0)


def garment_texture(rng: np.random.Generator, rest: np.ndarray) -> np.ndarray:
    """(V,) weights in [0, 1] mixing a garment's two colours, from a random procedural pattern."""
    pattern = PATTERNS[rng.choice(len(PATTERNS), p=[0.35, 0.25, 0.2, 0.2])]
    if pattern == "plain":
        return np.zeros(len(rest))
    if pattern == "stripes":
        direction = rng.normal(size=3) * np.array([0.4, 0.4, 1.0])
        direction /= np.linalg.norm(direction)
        period = rng.uniform(0.02, 0.12)
        return (np.sin(rest @ direction * (2 * np.pi / period)) > 0).astype(float)
    if pattern == "checks":
        size = rng.uniform(0.03, 0.10)
        cells = np.floor(rest / size).astype(np.int64)
        return ((cells[:, 0] + cells[:, 1] + cells[:, 2]) % 2).astype(float)
    waves = rng.normal(size=(4, 3)) * rng.uniform(15, 60)
    phases = rng.uniform(0, 2 * np.pi, 4)
    noise = np.sin(rest @ waves.T + phases).sum(1) / 4
    return np.clip(0.5 + noise, 0, 1)


def person_albedo(rng: np.random.Generator, body) -> tuple[np.ndarray, dict]:
    """(V, 3) float32 per-vertex albedo for one random person, and a short description of the outfit."""
    region = body.vertex_region
    r = {name: REGIONS.index(name) for name in REGIONS}
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.05)
    sleeves = rng.choice(list(SLEEVES), p=list(SLEEVES.values()))
    legwear = rng.choice(list(LEGWEAR), p=list(LEGWEAR.values()))
    top = _garment(rng, body.rest_vertices)
    bottom = _garment(rng, body.rest_vertices, dark=rng.random() < 0.5)
    albedo = np.tile(skin, (len(region), 1))
    top_regions = ["shirt"] + {
        "long": ["upper_sleeve", "lower_sleeve"],
        "short": ["upper_sleeve"],
        "none": [],
    }[sleeves]
    bottom_regions = ["thigh"] + (["shin"] if legwear == "trousers" else [])
    for names, garment in ((top_regions, top), (bottom_regions, bottom)):
        mask = np.isin(region, [r[n] for n in names])
        albedo[mask] = garment[mask]
    if legwear == "skirt":  # a skirt reaches the knees: colour the thighs, keep the shins bare
        albedo[region == r["thigh"]] = bottom[region == r["thigh"]] * 0.95
    albedo[region == r["shoes"]] = random_colour(rng, dark=rng.random() < 0.7)
    if rng.random() < 0.92:  # some people are bald
        albedo[region == r["hair"]] = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))]
    albedo[region == r["eyes"]] = 0.9
    outfit = {"sleeves": str(sleeves), "legwear": str(legwear)}
    return np.clip(albedo, 0, 1).astype(np.float32), outfit


def _garment(rng: np.random.Generator, rest: np.ndarray, dark: bool = False) -> np.ndarray:
    """(V, 3) colours of one garment over the whole body (masked by the caller)."""
    first = random_colour(rng, dark)
    second = random_colour(rng, dark) if rng.random() < 0.6 else first * rng.uniform(0.4, 0.8)
    weight = garment_texture(rng, rest)[:, None]
    return first * (1 - weight) + second * weight
