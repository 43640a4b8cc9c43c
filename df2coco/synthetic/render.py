"""Pixels of a synthetic photo: backgrounds, distractor shapes and textured garments.

All images are ``uint8 [H, W, 3]`` RGB arrays; polygons are ``[K, (x, y)]`` pixel
coordinates (x = column, y = row). Drawing uses OpenCV, which only fills and
strokes, so the colour order does not matter to it.

Garments get a base colour, a shading gradient and one of a few low-contrast
patterns, a darker outline and darker seams: one garment reads as one region, but
colour alone does not separate it from the background (backgrounds use the same
colour space, patterns and noise).
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

MIN_COLOUR_DISTANCE = 70.0  # RGB distance wanted between a garment and what lies under it
SHADE_STEPS = 160.0  # garment colour-table entries per unit of shading (shade 1.0 = entry 160)
NOISE_TILE = 640  # side of the cached sensor-noise tiles, px


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour, float32 [3] in 0..255, from a wide range of hues, saturations and values."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0, 255), rng.uniform(50, 245)]]], dtype=np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def contrasting_colour(rng: np.random.Generator, under: np.ndarray, tries: int = 8) -> np.ndarray:
    """The candidate colour farthest from ``under`` (float32 [3]), stopping early once it is far enough."""
    best, best_d = None, -1.0
    for _ in range(tries):
        c = random_colour(rng)
        d = float(np.linalg.norm(c - under))
        if d > best_d:
            best, best_d = c, d
        if d >= MIN_COLOUR_DISTANCE:
            break
    return best


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices, float32 [h, 1] and [1, w] (broadcast them to [h, w])."""
    return np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1], float32 [h, w, channels]: a coarse random grid upsampled bicubically."""
    grid = rng.uniform(-1, 1, size=(cells, cells, channels)).astype(np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(out.reshape(h, w, channels), -1, 1)


def _stripes(rng: np.random.Generator, h: int, w: int, period: float) -> np.ndarray:
    """A 0/1 stripe mask, float32 [h, w], at a random angle and phase."""
    yy, xx = _coords(h, w)
    theta = rng.uniform(0, np.pi)
    proj = xx * np.cos(theta) + yy * np.sin(theta) + rng.uniform(0, period)
    return ((proj % period) < period / 2).astype(np.float32)


def _blend(t: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel mix of two colours, uint8 [h, w, 3]; t: float32 [h, w] in [0, 1] (0 -> a, 1 -> b).

    Uses a 256-entry colour table: much faster than mixing in float over three channels.
    """
    lut = np.clip(a + (b - a) * (np.arange(256, dtype=np.float32)[:, None] / 255.0), 0, 255).astype(np.uint8)
    return lut[np.clip(t * 255.0 + 0.5, 0, 255).astype(np.uint8)]


def background(rng: np.random.Generator, h: int, w: int, plain: bool) -> np.ndarray:
    """A background image, uint8 [h, w, 3]: flat, gradient, stripes, checks or blotches.

    plain: restrict to flat colours and gradients (shop photos).
    """
    kinds = ("flat", "gradient") if plain else ("flat", "gradient", "stripes", "checks", "blotches")
    kind = kinds[rng.integers(len(kinds))]
    a, b = random_colour(rng), random_colour(rng)
    if kind == "flat":
        return np.full((h, w, 3), a.astype(np.uint8), np.uint8)
    if kind == "gradient":
        yy, xx = _coords(h, w)
        theta = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(theta) + yy * np.sin(theta)  # [h, w]
        t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    elif kind in ("stripes", "checks"):
        period = rng.uniform(8, 60)
        t = _stripes(rng, h, w, period)
        if kind == "checks":
            t = np.abs(t - _stripes(rng, h, w, period))
    else:
        t = 0.5 + 0.5 * _smooth_noise(rng, h, w, int(rng.integers(3, 9)), 1)[..., 0]
    return _blend(t, a, b)


def draw_distractors(rng: np.random.Generator, img: np.ndarray, count: int) -> None:
    """Draw ``count`` non-garment shapes (ellipses, rectangles) in place: clutter the model must ignore."""
    h, w = img.shape[:2]
    for _ in range(count):
        colour = tuple(float(c) for c in random_colour(rng))
        cx, cy = int(rng.integers(w)), int(rng.integers(h))
        rx, ry = int(rng.integers(4, max(5, w // 6))), int(rng.integers(4, max(5, h // 6)))
        if rng.random() < 0.5:
            cv2.ellipse(img, (cx, cy), (rx, ry), float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(img, (cx - rx, cy - ry), (cx + rx, cy + ry), colour, -1)


def garment_texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray) -> np.ndarray:
    """Cloth pixels for an [h, w] box, uint8 [h, w, 3].

    base colour x a linear shading gradient x one pattern (plain, stripes, checks,
    dots or mottled), all low contrast so the garment stays one region.
    """
    yy, xx = _coords(h, w)
    theta = rng.uniform(0, 2 * np.pi)
    t = xx * np.cos(theta) + yy * np.sin(theta)
    t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    shade = 1.0 + rng.uniform(0.1, 0.35) * (t - 0.5)  # [h, w]
    kind = int(rng.integers(5))
    if kind == 1 or kind == 2:  # stripes / checks
        period = rng.uniform(4, 18)
        m = _stripes(rng, h, w, period)
        if kind == 2:
            m = np.abs(m - _stripes(rng, h, w, period))
        shade = shade * (1.0 - rng.uniform(0.08, 0.2) * m)
    elif kind == 3:  # dots
        period = rng.uniform(6, 16)
        d = np.hypot((xx % period) - period / 2, (yy % period) - period / 2)
        shade = shade * (1.0 - rng.uniform(0.1, 0.2) * (d < period * 0.22))
    elif kind == 4:  # mottled
        shade = shade * (1.0 + 0.1 * _smooth_noise(rng, h, w, int(rng.integers(4, 12)), 1)[..., 0])
    # Colour table: entry i is base * i / SHADE_STEPS (so shade 1.0 -> base).
    lut = np.clip(base * (np.arange(256, dtype=np.float32)[:, None] / SHADE_STEPS), 0, 255).astype(np.uint8)
    return lut[np.clip(shade * SHADE_STEPS + 0.5, 0, 255).astype(np.uint8)]


def draw_garment(rng: np.random.Generator, img: np.ndarray, outline: np.ndarray, seams: list[np.ndarray],
                 buttons: np.ndarray, base: np.ndarray) -> None:
    """Paint one garment in place: textured fill of the outline, darker outline, seams and buttons.

    img: uint8 [H, W, 3]; outline: [K, (x, y)] int32 pixels inside the image; seams: float64 [P, 2]
    polylines in pixels; buttons: float64 [B, 2] centres in pixels; base: float32 [3] RGB colour.
    """
    x0, y0 = outline.min(axis=0)
    x1, y1 = outline.max(axis=0) + 1
    h, w = int(y1 - y0), int(x1 - x0)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [(outline - (x0, y0)).astype(np.int32)], 1)
    tex = garment_texture(rng, h, w, base)
    crop = img[y0:y1, x0:x1]  # a view: writing to it paints the image
    sel = mask.astype(bool)[..., None]  # [h, w, 1]
    np.copyto(crop, tex, where=sel)
    dark = tuple(float(c) for c in base * rng.uniform(0.45, 0.7))
    size = float(max(h, w))
    thick = max(1, int(round(size / 120)))
    seam_layer = crop.copy()
    for s in seams:
        pts = np.round(s - (x0, y0)).astype(np.int32)
        cv2.polylines(seam_layer, [pts], False, dark, thick, cv2.LINE_AA)
    for bx, by in buttons:
        r = max(1, int(round(size / 60)))
        cv2.circle(seam_layer, (int(round(bx - x0)), int(round(by - y0))), r, dark, -1, cv2.LINE_AA)
    np.copyto(crop, seam_layer, where=sel)  # seams never leak outside the garment
    cv2.polylines(img, [outline.astype(np.int32)], True, dark, 1, cv2.LINE_AA)


@functools.lru_cache(maxsize=16)
def _noise_tile(sigma: int) -> np.ndarray:
    """Fixed Gaussian noise of ``sigma`` grey levels, int16 [NOISE_TILE, NOISE_TILE, 3], equal in every process."""
    rng = np.random.default_rng(1000 + sigma)
    return np.round(rng.normal(0.0, sigma, size=(NOISE_TILE, NOISE_TILE, 3))).astype(np.int16)


def add_noise(rng: np.random.Generator, img: np.ndarray, sigma: int) -> np.ndarray:
    """The image plus Gaussian sensor noise of ``sigma`` grey levels, uint8 [H, W, 3] (saturating).

    The noise is a random window of a fixed per-sigma tile (drawing fresh normal
    noise for every pixel costs as much as painting the whole image).
    """
    h, w = img.shape[:2]
    tile = _noise_tile(int(sigma))
    reps = (-(-h // NOISE_TILE), -(-w // NOISE_TILE), 1)
    if reps != (1, 1, 1):
        tile = np.tile(tile, reps)
    oy = int(rng.integers(tile.shape[0] - h + 1))
    ox = int(rng.integers(tile.shape[1] - w + 1))
    return cv2.add(img, tile[oy:oy + h, ox:ox + w], dtype=cv2.CV_8U)
