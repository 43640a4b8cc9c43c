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

import cv2
import numpy as np

MIN_COLOUR_DISTANCE = 70.0  # RGB distance wanted between a garment and what lies under it


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


def background(rng: np.random.Generator, h: int, w: int, plain: bool) -> np.ndarray:
    """A background image, uint8 [h, w, 3]: flat, gradient, stripes, checks or blotches, plus noise.

    plain: restrict to flat colours and gradients (shop photos).
    """
    kinds = ("flat", "gradient") if plain else ("flat", "gradient", "stripes", "checks", "blotches")
    kind = kinds[rng.integers(len(kinds))]
    a, b = random_colour(rng), random_colour(rng)
    if kind == "flat":
        img = np.broadcast_to(a, (h, w, 3)).astype(np.float32)
    elif kind == "gradient":
        yy, xx = _coords(h, w)
        theta = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(theta) + yy * np.sin(theta)  # [h, w]
        t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
        img = a + (b - a) * t[..., None]
    elif kind in ("stripes", "checks"):
        period = rng.uniform(8, 60)
        m = _stripes(rng, h, w, period)
        if kind == "checks":
            m = np.abs(m - _stripes(rng, h, w, period))
        img = a + (b - a) * m[..., None]
    else:
        img = a + (b - a) * (0.5 + 0.5 * _smooth_noise(rng, h, w, int(rng.integers(3, 9)), 1))
    return np.ascontiguousarray(np.clip(img, 0, 255), dtype=np.uint8)


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
    """Cloth pixels for an [h, w] box, float32 [h, w, 3] in 0..255.

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
    tex = base[None, None, :] * shade[..., None]
    return tex


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
    tex = np.clip(garment_texture(rng, h, w, base), 0, 255).astype(np.uint8)
    crop = img[y0:y1, x0:x1]
    sel = mask.astype(bool)
    crop[sel] = tex[sel]
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
    crop[sel] = seam_layer[sel]  # seams never leak outside the garment
    cv2.polylines(img, [outline.astype(np.int32)], True, dark, 1, cv2.LINE_AA)


def add_noise(rng: np.random.Generator, img: np.ndarray, sigma: float) -> np.ndarray:
    """The image plus Gaussian sensor noise of ``sigma`` grey levels, uint8 [H, W, 3] (saturating).

    Uses OpenCV's generator (much faster than numpy's for whole images), seeded from ``rng``.
    """
    h, w, c = img.shape
    noise = np.empty((h, w * c), np.int16)  # one channel: randn's scalar sigma applies to channel 0 only
    cv2.setRNGSeed(int(rng.integers(2**31 - 1)))
    cv2.randn(noise, 0.0, float(sigma))
    return cv2.add(img, noise.reshape(h, w, c), dtype=cv2.CV_8U)
