"""Seeded, reproducible rain renderer for making rainy/clean training pairs (Rain100H-like by default).

Image model — Rain100H / JORDER (Yang et al., "Deep Joint Rain Detection and Removal from a Single Image",
CVPR 2017), eq. (3):

    O = α · (B + Σ_t S_t) + (1 − α) · A

B is the clean background, S_t one layer of rain streaks (1–4 layers sharing a dominant direction), A a bright
airlight and 1 − α the amount of veiling (rain accumulation / haze).  We composite B + Σ S_t additively with
clipping to [0, 1], because that is what the Rain100H residual shows: rainy − clean is never negative and stays
flat (≈ 0.23) over clean luma 0–0.5, then falls only where the sum saturates — a screen blend would instead
shrink linearly with B.  A screen blend is available (``RainConfig.blend="screen"``) for diversity.

Why a renderer of its own rather than "noise + motion blur" in an image editor: it is called per training
sample, so it has to be fast on small crops, bit-reproducible from a ``np.random.Generator`` and tunable
against measured benchmark statistics (see :func:`residual_statistics`).

Geometry is in pixels of a 480×320-ish frame (Rain100H's size); ``RainConfig.scale`` multiplies lengths and
widths (and divides streak counts by scale², so the same number of streaks falls on the same frame) for bigger
images. A crop is rendered with the geometry of the frame it came from, so crops keep ``scale``.

Angles are degrees from vertical; a positive angle means the streak's lower end lies to the right (rain
blowing rightwards, a "\\" look in image coordinates with y pointing down).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["PRESETS", "PRESET_NAMES", "RainConfig", "render_rain", "residual_statistics", "streak_angle"]

Range = tuple[float, float]


def _check_range(name: str, value, lo: float = 0.0, hi: float = math.inf) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"RainConfig.{name} must be a (low, high) pair of numbers, got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"RainConfig.{name} must be finite, got {value!r}")
    if a > b:
        raise ValueError(f"RainConfig.{name}: low {a} is greater than high {b}")
    if a < lo or b > hi:
        raise ValueError(f"RainConfig.{name} must lie within [{lo}, {hi}], got {value!r}")
    return (a, b)


@dataclass(frozen=True)
class RainConfig:
    """Ranges the renderer samples from, once per call (per image); the defaults are heavy, Rain100H-like rain.

    The ranges are deliberately wider than one benchmark image so that a model trained on the pairs sees
    varied rain; the heavy defaults were tuned so that the *distribution* of residual statistics over clean
    photos matches Rain100H (mean residual, coverage, PSNR-Y, orientation, streak width/length).
    """

    # streak layers (JORDER's S_t): a near-vertical dominant direction shared by all layers, jittered per layer
    layers: tuple[int, int] = (2, 4)
    angle: Range = (-16.0, 16.0)          # dominant direction, degrees from vertical (triangular, centre-weighted)
    layer_angle_jitter: float = 7.0       # std (deg) of each layer around the dominant direction
    density: Range = (45.0, 85.0)         # streaks per 10⁴ px of a scale-1 frame, per layer
    length: Range = (15.0, 70.0)          # mean streak length (px at scale 1) of a layer; streaks vary ±~30 %
    width: Range = (0.6, 2.2)             # streak FWHM (px at scale 1) of a layer
    intensity: Range = (0.14, 0.34)       # peak brightness a layer's streaks add (0–1 scale)
    intensity_spread: float = 0.6         # per-streak brightness ∈ intensity·[1 − spread, 1]
    motion_blur: Range = (0.05, 0.35)     # motion-blur length along the streaks, as a fraction of their length
    tint: float = 0.03                    # std of per-layer colour deviation from neutral white
    # veiling (1 − α) toward a bright airlight A (JORDER eq. 3); most Rain100H images have little or none
    # (≈ 12 % of their dark pixels are left untouched), a few show a clear veil
    veil_prob: float = 0.25
    veil: Range = (0.02, 0.12)
    airlight: Range = (0.75, 1.0)
    # lens droplets / splashes: rare, small, soft bright blobs that also blur what is behind them
    drop_prob: float = 0.1
    drops: Range = (0.2, 1.5)             # droplets per 10⁴ px of a scale-1 frame
    drop_radius: Range = (2.0, 7.0)       # px at scale 1
    blend: str = "add"                    # "add" (Rain100H) or "screen"
    scale: float = 1.0                    # geometry multiplier for frames bigger than ~480×320

    def __post_init__(self):
        try:
            lo, hi = self.layers
            ok = int(lo) == lo and int(hi) == hi and 1 <= lo <= hi <= 16
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"RainConfig.layers must be integers 1 ≤ low ≤ high ≤ 16, got {self.layers!r}")
        object.__setattr__(self, "layers", (int(lo), int(hi)))
        for name, lo_, hi_ in [("angle", -90.0, 90.0), ("density", 0.0, 1e4), ("length", 1.0, 1e4),
                               ("width", 0.3, 100.0), ("intensity", 0.0, 1.0), ("motion_blur", 0.0, 0.5),
                               ("veil", 0.0, 1.0), ("airlight", 0.0, 1.0), ("drops", 0.0, 1e3),
                               ("drop_radius", 0.3, 100.0)]:
            object.__setattr__(self, name, _check_range(name, getattr(self, name), lo_, hi_))
        for name, lo_, hi_ in [("layer_angle_jitter", 0, 90), ("intensity_spread", 0, 1), ("tint", 0, 1),
                               ("veil_prob", 0, 1), ("drop_prob", 0, 1), ("scale", 0.05, 50)]:
            v = getattr(self, name)
            if not (isinstance(v, numbers.Real) and not isinstance(v, bool) and lo_ <= v <= hi_):
                raise ValueError(f"RainConfig.{name} must be a number in [{lo_}, {hi_}], got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.blend not in ("add", "screen"):
            raise ValueError(f"RainConfig.blend must be 'add' or 'screen', got {self.blend!r}")

    @classmethod
    def heavy(cls, **overrides) -> "RainConfig":
        """Rain100H-like heavy rain (the defaults)."""
        return cls(**overrides)

    @classmethod
    def light(cls, **overrides) -> "RainConfig":
        """Rain100L-like light rain: sparse, thin streaks in 1–2 layers at a wide spread of angles, no veil or
        drops. Fitted to the residual statistics of ../shared/data/rain100l-dev (README table): PSNR-Y ≈ 27.9 dB
        over its backgrounds vs 27.6 dB for Rain100L's own rain."""
        return cls(**{**PRESETS["light"], **overrides})

    @classmethod
    def preset(cls, name: str, **overrides) -> "RainConfig":
        """One of PRESET_NAMES, drizzle → heavy; unknown names are refused with the list."""
        if name not in PRESETS:
            raise ValueError(f"unknown rain preset {name!r}; choose from {', '.join(PRESET_NAMES)}")
        return cls(**{**PRESETS[name], **overrides})

    def replace(self, **changes) -> "RainConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


# Rain from drizzle to downpour. "light" is fitted to Rain100L's residual statistics and "heavy" (the field
# defaults) to Rain100H's (README table); drizzle and moderate sit below and between them so that a model trained on
# every preset sees every intensity a pole or dashboard camera meets.
PRESETS: dict[str, dict] = {
    "drizzle": dict(layers=(1, 1), angle=(-40.0, 40.0), density=(1.5, 7.0), length=(8.0, 30.0), width=(0.6, 1.3),
                    intensity=(0.08, 0.3), veil_prob=0.0, drop_prob=0.0),
    "light": dict(layers=(1, 2), angle=(-40.0, 40.0), density=(4.0, 19.0), length=(14.0, 50.0), width=(0.8, 1.8),
                  intensity=(0.14, 0.5), veil_prob=0.0, drop_prob=0.0),
    "moderate": dict(layers=(1, 3), angle=(-25.0, 25.0), density=(18.0, 50.0), length=(15.0, 60.0), width=(0.7, 2.0),
                     intensity=(0.14, 0.4), veil_prob=0.1, veil=(0.01, 0.06), drop_prob=0.05),
    "heavy": dict(),
}
PRESET_NAMES = tuple(PRESETS)


def _validate_image(clean) -> np.ndarray:
    if not isinstance(clean, np.ndarray):
        raise ValueError(f"clean must be a numpy array (H×W×3 float RGB in [0, 1]), got {type(clean).__name__}")
    if clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"clean must be H×W×3 RGB, got array of shape {clean.shape}")
    if clean.shape[0] < 1 or clean.shape[1] < 1:
        raise ValueError(f"clean must be at least 1×1 pixels, got shape {clean.shape}")
    if clean.dtype.kind != "f":
        hint = " (divide uint8 images by 255)" if clean.dtype == np.uint8 else ""
        raise ValueError(f"clean must be a float image in [0, 1], got dtype {clean.dtype}{hint}")
    img = clean.astype(np.float32, copy=True)  # a copy: the caller's array is never touched
    if not np.isfinite(img).all():
        raise ValueError("clean contains NaN or infinite values")
    lo, hi = float(img.min()), float(img.max())
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise ValueError(f"clean must be in [0, 1], got values from {lo:.4g} to {hi:.4g}")
    np.clip(img, 0.0, 1.0, out=img)
    return img


def _gauss_peak(sigma: float) -> float:
    """Centre weight of OpenCV's discrete Gaussian: dividing by it keeps a 1-px line's peak after blurring."""
    k = int(2 * math.ceil(3 * sigma) + 1)
    return float(cv2.getGaussianKernel(k, sigma, cv2.CV_64F)[k // 2, 0])


def _cumsum_down(a: np.ndarray) -> np.ndarray:
    """Cumulative sum down the columns (float64) via cv2.integral — ~4× faster than np.cumsum(axis=0)."""
    ii = cv2.integral(a, sdepth=cv2.CV_64F)
    return cv2.subtract(ii[1:, 1:], ii[1:, :-1])


def _streak_layer(h: int, w: int, rng: np.random.Generator, cfg: RainConfig, angle: float) -> np.ndarray:
    """One layer S_t: H×W float32 brightness of parallel, tapered streaks (no colour yet).

    The layer is drawn in a frame rotated so that its streaks are vertical, where each streak occupies one
    1-px lane (column).  Streaks sharing a lane merge into long lines of varying brightness — the look of
    Rain100H, which was rendered as motion-blurred pixel noise.  All streaks are drawn at once: two impulses
    each in the first difference down the lanes, one integration (cv2.integral), then a box blur down the
    lanes (motion blur: segment ⊛ box = trapezoid with soft ends) — cost O(pixels), whatever the number or
    length of the streaks.  A Gaussian across the lanes gives the layer's width, and one bilinear warp turns
    the layer to its angle (which also anti-aliases tilted streaks).
    """
    s = cfg.scale
    density = rng.uniform(*cfg.density) / 1e4 / (s * s)       # streaks per pixel of this frame
    mean_len = rng.uniform(*cfg.length) * s
    fwhm = rng.uniform(*cfg.width) * s
    peak = rng.uniform(*cfg.intensity)
    ramp_frac = rng.uniform(*cfg.motion_blur)
    sigma = max(fwhm / 2.3548, 0.25)
    pad = int(math.ceil(3 * sigma)) + 2
    max_len = 1.6 * mean_len

    th = math.radians(angle)
    sn, cs = math.sin(th), math.cos(th)
    # rotated frame: u across the streaks (lanes), v along them; it must cover the whole image
    cu = int(math.ceil(w * abs(cs) + h * abs(sn))) + 2 * pad
    cv = int(math.ceil(h * abs(cs) + w * abs(sn))) + 2 * pad
    ext = 0.5 * max_len + 1.0                                   # half the longest streak
    n = int(rng.poisson(density * cu * (cv + 2 * ext)))
    lane = rng.integers(0, cu, n)
    centre = rng.uniform(-ext, cv + ext, n)                     # canvas row of the streak's centre
    lengths = np.clip(mean_len * np.exp(rng.normal(0.0, 0.3, n)), 2.0, max_len)
    bright = peak * (1.0 - cfg.intensity_spread * rng.random(n))
    if n == 0:
        return np.zeros((h, w), np.float32)

    # Each streak is a box of height `bright` down its lane: +bright at its start, −bright at its end in the
    # first difference, split linearly between the two nearest rows (exact area anti-aliasing of the ends),
    # and one integration down the columns draws them all.  A streak starting above the canvas starts at row 0.
    a = np.maximum(centre - 0.5 * lengths, 0.0)
    d = centre + 0.5 * lengths
    pos = np.concatenate([a, d])
    amp = np.concatenate([bright, -bright])
    lanes = np.concatenate([lane, lane])
    keep = (pos < cv) & np.concatenate([d > 0, d > 0])          # rows below / streaks above: no effect
    pos, amp, lanes = pos[keep], amp[keep], lanes[keep]
    i0 = pos.astype(np.int64)
    f = pos - i0
    flat = np.concatenate([i0 * cu + lanes, (i0 + 1) * cu + lanes])
    wts = np.concatenate([amp * (1.0 - f), amp * f])
    if flat.size == 0:  # every streak missed the canvas (tiny frames)
        return np.zeros((h, w), np.float32)
    first = np.bincount(flat, weights=wts, minlength=(cv + 1) * cu)[: cv * cu].reshape(cv, cu)
    layer = _cumsum_down(first).astype(np.float32)
    # motion blur along the streaks: a box of `ramp` px down the lanes turns every box into a trapezoid
    ramp = int(round(ramp_frac * mean_len))
    if ramp >= 2:
        layer = cv2.blur(layer, (1, ramp), borderType=cv2.BORDER_REPLICATE)

    if sigma > 0.3:
        ksize = 2 * int(math.ceil(3 * sigma)) + 1
        layer = cv2.GaussianBlur(layer, (ksize, 1), sigma, sigmaY=0, borderType=cv2.BORDER_CONSTANT)
        layer *= 1.0 / _gauss_peak(sigma)
    # image pixel (x, y) ← canvas (u, v): u = n·(p − c) + cu/2, v = d·(p − c) + cv/2, n = (cos, −sin), d = (sin, cos)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = np.array([[cs, -sn, (cu - 1) / 2.0 - cs * cx + sn * cy],
                  [sn, cs, (cv - 1) / 2.0 - sn * cx - cs * cy]], np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    if sigma >= 0.6 or th == 0.0:
        return cv2.warpAffine(layer, m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    # Thin tilted streaks "bead" when bilinear sampling hits them on and between pixel centres; sampling a
    # 2× grid and area-averaging it down keeps their brightness even along their length.
    m2 = m @ np.array([[0.5, 0.0, -0.25], [0.0, 0.5, -0.25], [0.0, 0.0, 1.0]])
    big = cv2.warpAffine(layer, m2, (2 * w, 2 * h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)


def _droplets(img: np.ndarray, rng: np.random.Generator, cfg: RainConfig) -> np.ndarray:
    """Lens droplets / splashes: soft discs that show a blurred, brightened copy of what lies behind them."""
    h, w = img.shape[:2]
    s = cfg.scale
    n = int(rng.poisson(rng.uniform(*cfg.drops) / 1e4 * h * w / (s * s)))
    if n == 0:
        return img
    xs = rng.uniform(0, w, n)
    ys = rng.uniform(0, h, n)
    rs = rng.uniform(*cfg.drop_radius, n) * s
    gain = rng.uniform(0.1, 0.35, n)
    mask = np.zeros((h, w), np.float32)
    lift = np.zeros((h, w), np.float32)
    for x, y, r, g in zip(xs, ys, rs, gain):
        c = (int(round(x)), int(round(y)))
        cv2.circle(mask, c, max(1, int(round(r))), 1.0, -1, cv2.LINE_8)
        cv2.circle(lift, c, max(1, int(round(r))), float(g), -1, cv2.LINE_8)
    soft = max(0.6, 0.35 * float(rs.mean()))
    mask = cv2.GaussianBlur(mask, (0, 0), soft)[:, :, None]
    lift = cv2.GaussianBlur(lift, (0, 0), soft)[:, :, None]
    behind = cv2.GaussianBlur(img, (0, 0), max(1.0, float(rs.mean())))
    return img * (1 - mask) + mask * (behind + lift)


def render_rain(clean: np.ndarray, rng: np.random.Generator, config: RainConfig | None = None) -> np.ndarray:
    """Renders rain over `clean` (float H×W×3 RGB in [0, 1]); returns a new float32 H×W×3 image in [0, 1].

    All randomness comes from `rng`, in a fixed order, so the same generator state gives a bit-identical
    result. Implements JORDER's O = α(B + Σ_t S_t) + (1 − α)A (Yang et al., CVPR'17) with additive
    compositing clipped to [0, 1] (what Rain100H's residuals show), optional droplets and a screen-blend option.
    """
    img = _validate_image(clean)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    cfg = RainConfig() if config is None else config
    if not isinstance(cfg, RainConfig):
        raise TypeError(f"config must be a RainConfig or None, got {type(cfg).__name__}")
    h, w = img.shape[:2]

    a0, a1 = cfg.angle  # centre-weighted (triangular): most Rain100H images are within ±10°, a few reach ±20°
    dominant = rng.triangular(a0, 0.5 * (a0 + a1), a1) if a1 > a0 else a0
    n_layers = int(rng.integers(cfg.layers[0], cfg.layers[1] + 1))
    rain = np.zeros((h, w, 3), np.float32)
    for _ in range(n_layers):  # element-wise sums in a fixed order (no BLAS): bit-identical across thread counts
        angle = dominant + cfg.layer_angle_jitter * rng.standard_normal()
        colour = (1.0 + cfg.tint * rng.standard_normal(3)).astype(np.float32)
        layer = _streak_layer(h, w, rng, cfg, angle)
        for c in range(3):
            rain[:, :, c] += layer * colour[c]

    use_veil = rng.random() < cfg.veil_prob
    veil = rng.uniform(*cfg.veil)
    airlight = rng.uniform(*cfg.airlight) * (1.0 + 0.5 * cfg.tint * rng.standard_normal(3))
    use_drops = rng.random() < cfg.drop_prob

    if cfg.blend == "add":
        out = np.add(img, rain, out=rain)
    else:  # screen: 1 − (1 − B)(1 − R)
        np.clip(rain, 0.0, 1.0, out=rain)
        out = 1.0 - (1.0 - img) * (1.0 - rain)
    np.clip(out, 0.0, 1.0, out=out)
    if use_veil:  # α (B + Σ S) + (1 − α) A with α = 1 − veil
        out *= np.float32(1.0 - veil)
        out += (veil * np.clip(airlight, 0.0, 1.0)).astype(np.float32)
    if use_drops:
        out = _droplets(out, rng, cfg)
        np.clip(out, 0.0, 1.0, out=out)
    return out.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------------------------------
# Measuring rain: used to tune the defaults against Rain100H and by calibration code.

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def streak_angle(residual_y: np.ndarray) -> tuple[float, float]:
    """Dominant streak direction of a rain layer (degrees from vertical, module convention) and its coherence.

    From the image-wide structure tensor of the gradients: streaks vary across, not along, their direction,
    so the dominant gradient orientation is perpendicular to them. Coherence is 1 for perfectly parallel lines.
    """
    y = np.asarray(residual_y, np.float32)
    gx = cv2.Scharr(y, cv2.CV_32F, 1, 0)  # Scharr, not Sobel: Sobel-3 pulls thin-line angles ~12 % toward 0°
    gy = cv2.Scharr(y, cv2.CV_32F, 0, 1)
    jxx, jyy, jxy = float((gx * gx).mean()), float((gy * gy).mean()), float((gx * gy).mean())
    grad = 0.5 * math.atan2(2 * jxy, jxx - jyy)  # gradient angle from the x axis
    coherence = math.hypot(jxx - jyy, 2 * jxy) / (jxx + jyy + 1e-12)
    return -math.degrees(grad), coherence


def _half_width(v: np.ndarray) -> float:
    below = np.nonzero(v < 0.5)[0]
    if below.size == 0:
        return float(v.size)
    i = int(below[0])  # linear interpolation between the last sample ≥ 0.5 and the first < 0.5
    return float(i - 1 + (v[i - 1] - 0.5) / (v[i - 1] - v[i] + 1e-12))


def residual_statistics(rainy: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """Statistics of the rain residual rainy − clean (float RGB in [0, 1]) that characterise a rain dataset.

    mean_r/g/b: mean residual; frac_gt_0.1 / frac_gt_0.3: fraction of pixels whose luma residual exceeds them;
    p50/p90/p99: luma residual percentiles; psnr_y: PSNR of rainy vs clean on BT.601 Y (MATLAB convention);
    angle, coherence: see :func:`streak_angle`; width/length: half-width at half maximum (px) of the
    residual's autocorrelation across/along the streak direction (after removing low frequencies);
    clear_dark: fraction of dark background pixels (max channel < 0.6) with residual < 0.02 — near 0 when a
    veil lifts everything, ~0.1 for Rain100H.
    """
    from .metrics import psnr_y

    rainy = np.asarray(rainy, np.float32)
    clean = np.asarray(clean, np.float32)
    if rainy.shape != clean.shape or rainy.ndim != 3 or rainy.shape[2] != 3:
        raise ValueError(f"expected two H×W×3 images of the same shape, got {rainy.shape} and {clean.shape}")
    res = rainy - clean
    y = res @ _LUMA
    out = dict(zip(("mean_r", "mean_g", "mean_b"), (float(v) for v in res.reshape(-1, 3).mean(0))))
    out["frac_gt_0.1"] = float((y > 0.1).mean())
    out["frac_gt_0.3"] = float((y > 0.3).mean())
    for p, v in zip((50, 90, 99), np.percentile(y, [50, 90, 99])):
        out[f"p{p}"] = float(v)
    out["psnr_y"] = psnr_y(np.round(rainy * 255), np.round(clean * 255))
    out["angle"], out["coherence"] = streak_angle(y)
    # autocorrelation along / across the measured direction, via FFT of the high-passed residual
    z = y - cv2.GaussianBlur(y, (0, 0), 8)
    power = np.abs(np.fft.rfft2(z)) ** 2
    ac = np.fft.irfft2(power, s=z.shape)
    ac = np.fft.fftshift(ac / max(ac.flat[0], 1e-12))
    cy, cx = z.shape[0] // 2, z.shape[1] // 2
    th = math.radians(out["angle"])
    r = np.arange(0, min(cy, cx, 60), dtype=np.float32)
    along = cv2.remap(ac.astype(np.float32), (cx + r * math.sin(th))[None], (cy + r * math.cos(th))[None],
                      cv2.INTER_LINEAR)[0]
    across = cv2.remap(ac.astype(np.float32), (cx + r * math.cos(th))[None], (cy - r * math.sin(th))[None],
                       cv2.INTER_LINEAR)[0]
    out["width"] = _half_width(across)
    out["length"] = _half_width(along)
    dark = clean.max(axis=2) < 0.6
    out["clear_dark"] = float((y[dark] < 0.02).mean()) if dark.any() else float("nan")
    return out
