"""Hypothesis strategies for sliding-window configurations (convolution and pooling).

One ``Window`` is everything a kernel call needs besides the data::

    x: (N, C, H, W), window KH x KW, stride (SH, SW), zero padding (PH, PW)
    OH = (H + 2*PH - KH) // SH + 1,   OW = (W + 2*PW - KW) // SW + 1

Ranges: batch 1-4, channels 1-6, kernel 1-5 on each axis independently (non-square),
stride 1-3 (so stride > kernel, stride == kernel and overlapping stride < kernel all occur),
padding 0..K-1 for convolution / im2col and 2*P <= K for pooling (PyTorch's rule). The input size is
drawn so that the padded input holds at least one window, plus ``extra`` more pixels, which makes
strides that leave rows over ((H + 2P - K) % S != 0) common.
"""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st


@dataclass(frozen=True)
class Window:
    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int

    @property
    def oh(self) -> int:
        return (self.h + 2 * self.ph - self.kh) // self.sh + 1

    @property
    def ow(self) -> int:
        return (self.w + 2 * self.pw - self.kw) // self.sw + 1

    @property
    def x_shape(self) -> tuple:
        return (self.n, self.c, self.h, self.w)

    @property
    def y_shape(self) -> tuple:
        return (self.n, self.c, self.oh, self.ow)

    @property
    def args(self) -> tuple:
        """The kernels' trailing arguments: (kh, kw, sh, sw, ph, pw)."""
        return (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw)

    @property
    def max_overlap(self) -> int:
        """Most windows one input pixel can belong to: ceil(KH/SH) * ceil(KW/SW)."""
        return -(-self.kh // self.sh) * -(-self.kw // self.sw)

    @property
    def rows_left_over(self) -> bool:
        """True when the last window stops short of the padded input's end on some axis."""
        return (self.h + 2 * self.ph - self.kh) % self.sh != 0 or (self.w + 2 * self.pw - self.kw) % self.sw != 0


@st.composite
def windows(draw, *, pooling: bool, max_batch: int = 4, max_channels: int = 6, max_kernel: int = 5,
            max_stride: int = 3, extra: int = 6) -> Window:
    """A random ``Window``; ``pooling=True`` restricts padding to 2*P <= K."""
    n = draw(st.integers(1, max_batch))
    c = draw(st.integers(1, max_channels))
    kh = draw(st.integers(1, max_kernel))
    kw = draw(st.integers(1, max_kernel))
    sh = draw(st.integers(1, max_stride))
    sw = draw(st.integers(1, max_stride))
    ph = draw(st.integers(0, kh // 2 if pooling else kh - 1))
    pw = draw(st.integers(0, kw // 2 if pooling else kw - 1))
    min_h = max(1, kh - 2 * ph)                    # padded input must hold one window
    min_w = max(1, kw - 2 * pw)
    h = draw(st.integers(min_h, min_h + extra))
    w = draw(st.integers(min_w, min_w + extra))
    return Window(n, c, h, w, kh, kw, sh, sw, ph, pw)


# Hand-picked configurations every property also runs on (hypothesis @example), one per hard case.
EDGE_CASES = {
    # stride > kernel on both axes, rows and columns left over, padding
    "stride_gt_kernel_rows_left": Window(n=2, c=3, h=8, w=7, kh=2, kw=1, sh=3, sw=2, ph=1, pw=0),
    # overlapping non-square windows (stride < kernel) that do not tile the input, with padding
    "overlap_non_tiling_padded": Window(n=1, c=2, h=7, w=6, kh=3, kw=4, sh=2, sw=1, ph=1, pw=2),
    # kernel as large as the padded input: a single output pixel
    "one_window": Window(n=3, c=1, h=3, w=2, kh=5, kw=4, sh=2, sw=3, ph=1, pw=1),
    # 1x1 kernel with stride: pure subsampling
    "one_by_one_strided": Window(n=4, c=6, h=5, w=6, kh=1, kw=1, sh=2, sw=3, ph=0, pw=0),
    # the classic 2x2 / stride 2 pooling (max pooling has an unrolled path for it), odd sizes left over
    "two_by_two_stride_two": Window(n=2, c=3, h=5, w=7, kh=2, kw=2, sh=2, sw=2, ph=0, pw=0),
}

# im2col also allows padding up to K-1 (more than half the kernel).
IM2COL_EDGE_CASES = dict(EDGE_CASES, deep_padding=Window(n=2, c=2, h=2, w=3, kh=4, kw=5, sh=2, sw=3, ph=3, pw=4))
