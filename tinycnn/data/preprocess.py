"""Turn a picture someone made into the input a trained network expects, the way its training
images were prepared, and say what was done in one line per step.

    prep = Preparation.for_training_data("embedded", (1, 28, 28), mean=[33.3])
    x, steps = prepare(pixels, prep)          # uint8 (C, H, W), list of one-line descriptions

The steps, in order:

    alpha          a transparent background is filled: white behind dark strokes, black behind light
                   ones (so that the strokes stay visible once the alpha channel is gone)
    channels       colour -> grey (Pillow's "L" weights) or grey -> RGB, as the network was trained
    polarity       grey networks only: the background is read off the image's border (the median of
                   a thin frame) and the image inverted when its background is light and the training
                   images' was dark (MNIST: light digits on black), or the other way round;
                   ``invert=True`` / ``False`` overrides the guess
    layout         "digit" (MNIST-style data): levels stretched (background -> 0, brightest -> 255),
                   the content's bounding box scaled to fit a box of 20/28 of the input (aspect ratio
                   kept; Fashion-MNIST: the whole input), placed so that its centre of mass is at
                   the centre, as MNIST's digits were prepared;
                   "fit" (photos, CIFAR-like): scaled so that it covers H x W keeping the aspect
                   ratio, then the centre cut out;
                   "stretch" (a folder dataset trained with ``--image-size``): resized to H x W as
                   its training images were

Pixels here are float64 in [0, 255] while they are worked on: grey (H, W) or colour (H, W, 3); the
result is uint8 (C, H, W). Resizing uses Pillow's Lanczos filter (it averages over the source pixels when it shrinks).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Datasets prepared like MNIST's digits, and the share of the input the content's box spans.
DIGIT_BOX = {"embedded": 20 / 28, "mnist": 20 / 28, "fashion_mnist": 1.0}
CONTENT_THRESHOLD = 0.15      # of the stretched range: pixels above it count as content
MIN_CONTRAST = 24.0           # grey levels between background and brightest pixel; less is blank
LEVELS_SLACK = 16.0           # the range is stretched to 0..255 only when it spans less than 255 minus
                              # this (a clean image is left alone)


@dataclass
class Preparation:
    """How images are prepared for one network."""
    image_shape: tuple            # (C, H, W) the network takes
    layout: str                   # "digit", "fit" or "stretch" (module docstring)
    dark_background: bool | None  # the training images' background, for grey networks; None for colour
    box: float = 20 / 28          # "digit" layout: the content's longest side as a share of H (and W)

    @classmethod
    def for_training_data(cls, dataset: str, image_shape, *, mean=None, resized: bool = False) -> "Preparation":
        """Choose the preparation for a network trained on ``dataset`` (a ``data.load`` name).

        mean: the training images' per-channel mean (0..255): a grey network trained on images whose
        mean is below mid-grey learned dark backgrounds. resized: the training images were resized to
        H x W without keeping the aspect ratio (``load_folder(size=...)``)."""
        c, h, w = (int(d) for d in image_shape)
        dark = None
        if c == 1:
            dark = True if mean is None else float(np.mean(mean)) < 127.5
        base = dataset.split(":")[0]
        if c == 1 and base in DIGIT_BOX:
            return cls((c, h, w), "digit", dark, DIGIT_BOX[base])
        return cls((c, h, w), "stretch" if resized else "fit", dark)


def _resize(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """float (H0, W0[, 3]) -> float (h, w[, 3]), Pillow bilinear on float32 planes."""
    from PIL import Image
    planes = [a] if a.ndim == 2 else [a[..., k] for k in range(a.shape[2])]
    out = [np.asarray(Image.fromarray(p.astype(np.float32), mode="F").resize((w, h), Image.Resampling.LANCZOS),
                      dtype=np.float64) for p in planes]
    return out[0] if a.ndim == 2 else np.stack(out, axis=2)


def _grey(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) with the ITU-R 601 weights Pillow's convert("L") uses."""
    return rgb @ np.array([0.299, 0.587, 0.114])


def border_level(g: np.ndarray) -> float:
    """Median grey level of a frame around the image: 2 % of the shorter side, at least one pixel."""
    h, w = g.shape
    t = max(1, round(0.02 * min(h, w)))
    frame = np.concatenate([g[:t].ravel(), g[-t:].ravel(), g[:, :t].ravel(), g[:, -t:].ravel()])
    return float(np.median(frame))


def composite_alpha(rgba: np.ndarray) -> tuple[np.ndarray, str | None]:
    """float (H, W, 4) -> (H, W, 3) on a plain background, and the step's description (None when
    every pixel is opaque). White goes behind dark strokes, black behind light ones."""
    rgb, alpha = rgba[..., :3], rgba[..., 3:] / 255.0
    if alpha.min() >= 1.0:
        return rgb, None
    visible = alpha[..., 0] > 0.5
    if not visible.any():
        raise ValueError("the image is fully transparent; there is nothing to classify")
    ink = float(_grey(rgb)[visible].mean())
    bg = 255.0 if ink < 127.5 else 0.0
    name = "white" if bg else "black"
    share = 100.0 * float((alpha < 1.0).mean())
    return (alpha * rgb + (1.0 - alpha) * bg, f"alpha: {share:.0f} % transparent; filled with {name} "
            f"behind the {'dark' if bg else 'light'} content")


def _place_by_centre_of_mass(patch: np.ndarray, h: int, w: int) -> tuple[np.ndarray, tuple]:
    """Put ``patch`` (ph, pw) into an (h, w) canvas of zeros so that its centre of mass lands on
    (h/2, w/2) (MNIST's digits: (14, 14) of 28x28), rounded to whole pixels; parts falling outside
    are cut. Returns the canvas and the patch's top-left corner."""
    ys, xs = np.indices(patch.shape)
    mass = patch.sum()
    cy, cx = (ys * patch).sum() / mass, (xs * patch).sum() / mass
    top, left = int(round(h / 2 - cy)), int(round(w / 2 - cx))
    canvas = np.zeros((h, w))
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + patch.shape[0], h), min(left + patch.shape[1], w)
    if y1 > y0 and x1 > x0:
        canvas[y0:y1, x0:x1] = patch[y0 - top:y1 - top, x0 - left:x1 - left]
    return canvas, (top, left)


def _digit_layout(g: np.ndarray, h: int, w: int, box: float, steps: list) -> np.ndarray:
    """Light content on a dark background (H0, W0) -> (h, w) prepared as MNIST's digits were."""
    bg, peak = border_level(g), float(g.max())
    if peak - bg < MIN_CONTRAST:
        raise ValueError(f"the image looks blank: its brightest pixel ({peak:.0f}) is within {MIN_CONTRAST:.0f} "
                         f"grey levels of its background ({bg:.0f}) after the steps above; if that background "
                         "is light, the picture needs inverting (invert=True)")
    ink = np.clip(g - bg, 0.0, 255.0)
    if peak - bg < 255 - LEVELS_SLACK:
        ink *= 255.0 / (peak - bg)
        steps.append(f"levels: background {bg:.0f} -> 0, brightest {peak:.0f} -> 255")
    elif bg >= 0.5:
        steps.append(f"levels: background {bg:.0f} -> 0")
    rows = np.flatnonzero((ink > CONTENT_THRESHOLD * 255).any(axis=1))
    cols = np.flatnonzero((ink > CONTENT_THRESHOLD * 255).any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    ch, cw = r1 - r0, c1 - c0
    side = max(1, round(box * min(h, w)))
    if g.shape == (h, w) and 0.8 * side <= max(ch, cw) <= side:       # already at the network's scale
        patch = ink
        what = f"content {ch}x{cw} already fits the {side}x{side} box"
    else:
        s = side / max(ch, cw)
        nh, nw = max(1, round(ch * s)), max(1, round(cw * s))
        patch = np.clip(_resize(ink[r0:r1, c0:c1], nh, nw), 0.0, 255.0)
        what = (f"content {ch}x{cw} at row {r0}, column {c0} cropped and scaled to {nh}x{nw} "
                f"(fits {side}x{side}, aspect kept)")
    canvas, (top, left) = _place_by_centre_of_mass(patch, h, w)
    steps.append(f"{what}; centre of mass put at the centre of {h}x{w}")
    return canvas


def _fit_layout(a: np.ndarray, h: int, w: int, steps: list) -> np.ndarray:
    """Scale to cover (h, w) keeping the aspect ratio, then cut out the centre."""
    h0, w0 = a.shape[:2]
    if (h0, w0) == (h, w):
        return a
    s = max(h / h0, w / w0)
    nh, nw = max(h, round(h0 * s)), max(w, round(w0 * s))
    scaled = _resize(a, nh, nw)
    top, left = (nh - h) // 2, (nw - w) // 2
    steps.append(f"resized {h0}x{w0} -> {nh}x{nw} (aspect kept)" +
                 (f", centre {h}x{w} cut out" if (nh, nw) != (h, w) else ""))
    return scaled[top:top + h, left:left + w]


def prepare(pixels: np.ndarray, prep: Preparation, *, invert: bool | None = None) -> tuple[np.ndarray, list]:
    """One picture -> (uint8 (C, H, W) for the network, the steps taken, one line each).

    pixels: (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or (H, W, 4) RGBA, values 0..255.
    invert: None = guess from the border (grey networks), True / False = force."""
    a = np.asarray(pixels, dtype=np.float64)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (2, 3, 4)) or min(a.shape[:2]) < 1:
        raise ValueError(f"prepare: expected (H, W), (H, W, 2), (H, W, 3) or (H, W, 4) pixels, got {a.shape}")
    steps = []
    if a.ndim == 3 and a.shape[2] == 2:                                   # grey + alpha
        a = np.concatenate([np.repeat(a[..., :1], 3, axis=2), a[..., 1:]], axis=2)
    if a.ndim == 3 and a.shape[2] == 4:
        a, step = composite_alpha(a)
        if step:
            steps.append(step)
    c, h, w = prep.image_shape
    colour = a.ndim == 3 and not (np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]))
    if c == 1:
        if a.ndim == 3:
            if colour:
                steps.append("colour -> grey (the network takes 1 channel)")
            a = _grey(a) if colour else a[..., 0]
        light = border_level(a) >= 127.5
        if invert is None:
            flip = light == bool(prep.dark_background)
            trained = "dark" if prep.dark_background else "light"
            steps.append(f"background {'light' if light else 'dark'} (border level {border_level(a):.0f}), "
                         f"training images' {trained}: " + ("inverted" if flip else "not inverted")
                         + f" (override with {'--no-invert' if flip else '--invert'})")
        else:
            flip = invert
            steps.append("inverted (--invert)" if flip else "not inverted (--no-invert)")
        if flip:
            a = 255.0 - a
        if prep.layout == "digit":
            a = _digit_layout(a, h, w, prep.box, steps)
    else:
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
            steps.append("grey -> RGB (the network takes 3 channels)")
        if invert:
            a = 255.0 - a
            steps.append("inverted (--invert)")
    if prep.layout == "fit":
        a = _fit_layout(a, h, w, steps)
    elif prep.layout == "stretch" and a.shape[:2] != (h, w):
        steps.append(f"resized {a.shape[0]}x{a.shape[1]} -> {h}x{w} (stretched, as the training images were)")
        a = _resize(a, h, w)
    x = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return (x[None] if x.ndim == 2 else x.transpose(2, 0, 1)), steps


def _pillow():
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ImportError("reading images needs Pillow: pip install 'tinycnn[images]' "
                          "(or pip install pillow)") from None
    return Image, ImageOps


def read_pixels(path) -> tuple[np.ndarray, str]:
    """Read an image file -> (float64 pixels for ``prepare``, "HxW MODE" of the file).

    The EXIF orientation of a photo is applied. 16-bit grey images are scaled to 0..255. A file
    that is missing, unreadable, truncated, or larger than Pillow's decompression-bomb limit
    (``PIL.Image.MAX_IMAGE_PIXELS``) raises ValueError naming it."""
    Image, ImageOps = _pillow()
    try:
        with Image.open(path) as im:
            im.load()
            what = f"{im.height}x{im.width} {im.mode}"
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                a = np.asarray(im, dtype=np.float64)
                a = a * (255.0 / 65535.0) if a.max() > 255 else a
                return np.clip(a, 0, 255), what
            has_alpha = im.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info
            if im.mode in ("1", "L"):
                target = "L"
            elif im.mode in ("LA", "La"):
                target = "LA"
            else:
                target = "RGBA" if has_alpha else "RGB"
            return np.asarray(im.convert(target), dtype=np.float64), what
    except Exception as err:       # FileNotFoundError, UnidentifiedImageError, DecompressionBombError, truncated
        raise ValueError(f"cannot read image {path} ({type(err).__name__}: {err})") from None
