"""The product catalogue: sixteen retail products, each a class of the shelf workload.

Sizes are percentages of the free height between two shelf boards, so one catalogue serves
every image size. Colours are 8-bit RGB. Brand marks are drawn from integer geometry and a
built-in 3x5 bitmap alphabet (no fonts), so they rasterize identically everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from neurotoken.jobs.spec import NUM_CLASSES

Shape = Literal["bottle", "can", "box", "jar", "carton"]
Mark = Literal["circle", "diamond", "stripes", "chevron", "cross", "dots", "wave", "ring"]
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Product:
    """One catalogue entry (a class of the classifier)."""

    name: str
    shape: Shape
    height_pct: int
    """Height as a percentage of the free height between shelf boards."""
    width_pct: int
    """Width as a percentage of the free height between shelf boards."""
    body: RGB
    label: RGB
    mark_colour: RGB
    accent: RGB
    """Cap, lid, rim or gable colour."""
    mark: Mark
    brand: str
    """Two capital letters printed on the label when it is large enough."""


CATALOGUE: tuple[Product, ...] = (
    Product(
        "aqua-water",
        "bottle",
        92,
        26,
        (150, 200, 235),
        (240, 248, 255),
        (30, 110, 200),
        (20, 80, 180),
        "wave",
        "AQ",
    ),
    Product(
        "cola-bottle",
        "bottle",
        86,
        28,
        (70, 35, 25),
        (205, 30, 35),
        (250, 250, 250),
        (200, 20, 30),
        "ring",
        "CO",
    ),
    Product(
        "lime-soda",
        "bottle",
        84,
        27,
        (45, 150, 70),
        (250, 225, 60),
        (30, 120, 50),
        (240, 240, 240),
        "chevron",
        "LS",
    ),
    Product(
        "orange-juice",
        "carton",
        78,
        34,
        (245, 150, 40),
        (255, 240, 210),
        (230, 110, 20),
        (250, 250, 250),
        "circle",
        "OJ",
    ),
    Product(
        "milk",
        "carton",
        82,
        36,
        (238, 238, 240),
        (60, 120, 210),
        (255, 255, 255),
        (60, 120, 210),
        "dots",
        "MK",
    ),
    Product(
        "cola-can",
        "can",
        52,
        30,
        (205, 25, 35),
        (240, 240, 240),
        (205, 25, 35),
        (190, 190, 195),
        "ring",
        "CC",
    ),
    Product(
        "energy-can",
        "can",
        58,
        26,
        (30, 30, 36),
        (60, 225, 90),
        (30, 30, 36),
        (170, 175, 180),
        "diamond",
        "EN",
    ),
    Product(
        "beer-can",
        "can",
        50,
        31,
        (205, 175, 70),
        (35, 60, 150),
        (240, 220, 120),
        (200, 200, 205),
        "stripes",
        "BR",
    ),
    Product(
        "tea-can",
        "can",
        46,
        32,
        (30, 140, 140),
        (245, 235, 215),
        (150, 40, 40),
        (185, 190, 190),
        "cross",
        "TE",
    ),
    Product(
        "cereal-box",
        "box",
        88,
        60,
        (245, 205, 40),
        (220, 40, 40),
        (255, 240, 200),
        (200, 160, 20),
        "circle",
        "CR",
    ),
    Product(
        "cracker-box",
        "box",
        64,
        52,
        (45, 85, 195),
        (250, 250, 245),
        (45, 85, 195),
        (30, 60, 150),
        "stripes",
        "CK",
    ),
    Product(
        "tissue-box",
        "box",
        48,
        62,
        (225, 125, 175),
        (255, 250, 250),
        (180, 60, 130),
        (250, 200, 220),
        "dots",
        "TS",
    ),
    Product(
        "pasta-box",
        "box",
        80,
        40,
        (250, 250, 250),
        (30, 90, 170),
        (250, 210, 60),
        (30, 90, 170),
        "wave",
        "PA",
    ),
    Product(
        "jam-jar",
        "jar",
        44,
        36,
        (140, 20, 60),
        (250, 240, 220),
        (140, 20, 60),
        (210, 170, 60),
        "diamond",
        "JM",
    ),
    Product(
        "honey-jar",
        "jar",
        48,
        40,
        (235, 165, 30),
        (255, 255, 255),
        (150, 90, 10),
        (110, 65, 25),
        "chevron",
        "HN",
    ),
    Product(
        "sauce-jar",
        "jar",
        54,
        34,
        (190, 45, 30),
        (250, 245, 235),
        (40, 130, 50),
        (40, 130, 50),
        "cross",
        "SA",
    ),
)
assert len(CATALOGUE) == NUM_CLASSES

GLYPHS: dict[str, tuple[str, ...]] = {
    "A": ("010", "101", "111", "101", "101"),
    "B": ("110", "101", "110", "101", "110"),
    "C": ("011", "100", "100", "100", "011"),
    "E": ("111", "100", "110", "100", "111"),
    "H": ("101", "101", "111", "101", "101"),
    "J": ("001", "001", "001", "101", "010"),
    "K": ("101", "101", "110", "101", "101"),
    "L": ("100", "100", "100", "100", "111"),
    "M": ("101", "111", "111", "101", "101"),
    "N": ("110", "101", "101", "101", "101"),
    "O": ("010", "101", "101", "101", "010"),
    "P": ("110", "101", "110", "100", "100"),
    "Q": ("010", "101", "101", "110", "011"),
    "R": ("110", "101", "110", "101", "101"),
    "S": ("011", "100", "010", "001", "110"),
    "T": ("111", "010", "010", "010", "010"),
}
assert all(ch in GLYPHS for p in CATALOGUE for ch in p.brand)
