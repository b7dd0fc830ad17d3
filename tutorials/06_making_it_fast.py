# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 6: making it fast
#
# Tutorial 1 showed that a convolution can be written as four nested loops, or as *im2col* followed by
# one matrix multiply. Both compute the same numbers. This tutorial measures how differently fast they
# are, and explains why, by climbing a *speed ladder* for one convolution layer:
#
# 1. **loops**: Python loops over every output value, NumPy for each window's sum;
# 2. **NumPy im2col**: copy every window into a column of a matrix with a few NumPy slices, then one
#    matrix multiply;
# 3. **Numba im2col**: the same, with the copy done by a compiled loop (tinycnn's `kernels.im2col`);
# 4. **tinycnn's executor**: the `Conv2D` op of `tinycnn.fast`, which runs when a network trains;
#
# and, when it is installed, **PyTorch**'s convolution as a yardstick. Each rung is checked to compute
# the same numbers as the rung before (within a rounding bound derived from the sum's length, not a tuned
# tolerance), and timed on this machine. The four reasons that come up on the way are the ones that
# decide the speed of most numerical code: **interpreter overhead**, **memory traffic**,
# **matrix-multiply efficiency** and **threads**.
#
# A word on the timings. They are medians of repeated runs, taken on a 2-core machine that other
# programs may share, so the load average is printed next to them. The page asserts only what holds on
# any machine (the numbers agree; the loops are more than 10 times slower than im2col), never a precise
# time: read the times as orders of magnitude.
#
# **About the run on this page.** It was made while the 2-core machine was heavily loaded (load average
# about 4, printed below, and 8 shortly before), so its times are noisy and the two-thread ones are
# distorted. Where an
# explanation needs the numbers of a quiet machine, the text quotes an earlier full run of this page
# on a quiet machine (load average 0.9) and says so; this run's own numbers are always the ones printed.

# %%
import os
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numba
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import tinycnn as tc
from tinycnn import kernels

from helpers import FAST, assert_agree, quote, rounding_bound, save_figure

try:
    import torch
except ImportError:            # the tutorial runs without PyTorch; only its rung is skipped
    torch = None

rng = np.random.default_rng(6)
print("mode:", "fast" if FAST else "full")
blas = next((p for p in threadpool_info() if p["user_api"] == "blas"), {})
print(f"cores: {os.cpu_count()}, BLAS: {blas.get('internal_api')} {blas.get('version')} "
      f"(kernels for {blas.get('architecture')}), Numba {numba.__version__}, "
      f"PyTorch {torch.__version__ if torch else 'not installed'}"
      + (f" (CPU capability it uses: {torch.backends.cpu.get_cpu_capability()})" if torch else ""))
print("load average (1, 5, 15 min) at the start: %.1f %.1f %.1f" % os.getloadavg())

# %% [markdown]
# ## 1. The layer, and how to time it
#
# The layer is the second convolution of the seed article's CNN: 32 input channels, 64 filters of
# size 3 × 3, on 15 × 15 feature maps, no padding, stride 1, so the output is 13 × 13. Its work is
# counted in *multiply-adds*: each of the N · 64 · 13 · 13 outputs is a sum of 32 · 3 · 3 = 288
# products. A multiply-add is two floating-point operations (FLOPs), which is how the speeds of matrix
# multiplies are quoted.
#
# Two small tools. `threads(n)` sets how many threads every pool may use: NumPy's BLAS (through
# threadpoolctl), Numba's and PyTorch's. `median_time` runs a function once untimed (which compiles
# Numba code and warms the caches), then `reps` times, and returns the median: the median ignores the
# runs that another program happened to interrupt.
#
# Which clock? The wall clock (`time.perf_counter`) counts everything, including the time this program
# sat waiting for a core while other programs ran: on a shared machine that inflates every time by a
# varying amount. The CPU-time clock (`time.process_time`) counts only the time the cores actually
# spent on this program, summed over its threads. For work on **one thread** the CPU time is what the
# computation costs and is far steadier under load, so the ladder below uses it. For comparing one
# thread with two it would be wrong (two threads spend at least as much CPU time as one; what they can
# save is wall time), so section 9 uses the wall clock.

# %%
N = 2 if FAST else 32                   # images in the batch
C, O, HW, K = 32, 64, 15, 3             # in channels, out channels, input height = width, kernel size
OHW = HW - K + 1                        # output height = width: (15 - 3) // 1 + 1 = 13
REPS = 3 if FAST else 25                # timed repeats of a fast rung
LOOP_REPS = 1 if FAST else 3            # the loops take seconds per run in full mode

x = rng.standard_normal((N, C, HW, HW), dtype=np.float32)                  # (N, C, H, W)
w = (rng.standard_normal((O, C, K, K)) / np.sqrt(C * K * K)).astype(np.float32)   # (O, C, KH, KW)
b = (0.1 * rng.standard_normal(O)).astype(np.float32)                      # (O,)

MACS = N * O * OHW * OHW * C * K * K     # multiply-adds of one forward pass
print(f"input {x.shape}, weights {w.shape}, output ({N}, {O}, {OHW}, {OHW})")
print(f"{MACS:,} multiply-adds = {2 * MACS / 1e6:.1f} MFLOP per forward pass")


@contextmanager
def threads(n):
    """Let BLAS, Numba and PyTorch use n threads inside the block."""
    old_numba = numba.get_num_threads()
    old_torch = torch.get_num_threads() if torch else None
    with threadpool_limits(limits=n, user_api="blas"):
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        if torch:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            numba.set_num_threads(old_numba)
            if torch:
                torch.set_num_threads(old_torch)


def median_time(fn, reps, clock=time.process_time):
    """Median time of fn() in seconds by ``clock`` (CPU time by default), over reps calls after one untimed call."""
    fn()
    times = []
    for _ in range(reps):
        start = clock()
        fn()
        times.append(clock() - start)
    return float(np.median(times))


# %% [markdown]
# ## 2. Rung 1: loops
#
# The definition, as directly as NumPy allows: for every image, filter and output position, take the
# 32 × 3 × 3 window under the filter, multiply it by the filter and sum. The four loops run in Python,
# the 288 products of one window in NumPy.

# %%
def conv_loops(x, w, b):
    """Cross-correlation by loops. x: (N, C, H, W), w: (O, C, KH, KW), b: (O,) -> (N, O, OH, OW)."""
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    y = np.empty((n, o, h - kh + 1, wd - kw + 1), dtype=x.dtype)
    for i in range(n):
        for f in range(o):
            for r in range(h - kh + 1):
                for c in range(wd - kw + 1):
                    window = x[i, :, r:r + kh, c:c + kw]                       # (C, KH, KW)
                    y[i, f, r, c] = np.sum(window * w[f]) + b[f]
    return y


with threads(1):
    y_loops = conv_loops(x, w, b)
    t_loops = median_time(lambda: conv_loops(x, w, b), LOOP_REPS)
calls = N * O * OHW * OHW
print(f"loops: {t_loops * 1e3:.1f} ms for {calls:,} windows = {t_loops / calls * 1e6:.2f} µs per window, "
      f"{t_loops / MACS * 1e9:.1f} ns per multiply-add")

# %% [markdown]
# Each window is only 288 multiply-adds, which a CPU core can do in well under a tenth of a microsecond.
# What costs microseconds is everything around them: Python looks up `x`, builds a slice object, creates
# a view, calls into NumPy, which allocates the product `window * w[f]`, then sums it, and Python boxes
# the result and stores it. That is **interpreter overhead**: a fixed cost per operation, paid once per
# window, that is far larger than the arithmetic of the window.
#
# To see the scale, here is one window summed three ways: a pure Python loop over the 288 products (no
# NumPy at all), the NumPy expression above, and the time that window's share of work would take in a
# matrix multiply (measured in section 5).

# %%
win = x[0, :, 0:K, 0:K].astype(np.float64)          # (C, KH, KW), one window
filt = w[0].astype(np.float64)
win_list, filt_list = win.ravel().tolist(), filt.ravel().tolist()


def window_pure_python():
    s = 0.0
    for a, c in zip(win_list, filt_list):
        s += a * c
    return s


def window_numpy():
    return np.sum(win * filt)


assert abs(window_pure_python() - window_numpy()) <= rounding_bound(C * K * K, np.sum(np.abs(win * filt)))
t_py = median_time(window_pure_python, 20 if FAST else 2000)
t_np = median_time(window_numpy, 20 if FAST else 2000)
print(f"one window, pure Python: {t_py * 1e6:.2f} µs ({t_py / (C * K * K) * 1e9:.0f} ns per multiply-add)")
print(f"one window, NumPy:       {t_np * 1e6:.2f} µs (almost all of it the cost of calling NumPy)")

# %% [markdown]
# Pure Python pays its overhead on every multiply-add; NumPy pays it once per call, but a call costs a
# few microseconds, so a call that does only 288 multiply-adds is still almost all overhead. The cure is
# to make **few calls that each do a lot of work**. That is what im2col does.
#
# ## 3. Rung 2: im2col in NumPy
#
# im2col (tutorial 1 drew it) copies each window into one column of a matrix `cols` with C · KH · KW =
# 288 rows and N · OH · OW columns. Then the whole convolution is a single matrix multiply of the
# flattened weights, (64, 288), by `cols`. The copy itself needs no loop over windows: for each of the
# 9 kernel offsets (i, j), the pixels every window sees at that offset form one strided slice of the
# input. So nine NumPy slice copies build all of `cols`.

# %%
def im2col_numpy(x, kh, kw):
    """x: (N, C, H, W) -> cols: (C*KH*KW, N*OH*OW); row (c, i, j), column (n, oh, ow). Stride 1, no padding."""
    n, c, h, wd = x.shape
    oh, ow = h - kh + 1, wd - kw + 1
    cols = np.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = x[:, :, i:i + oh, j:j + ow].transpose(1, 0, 2, 3)   # (C, N, OH, OW)
    return cols.reshape(c * kh * kw, n * oh * ow)


def conv_from_cols(cols, w, b, n):
    """The matrix multiply and the reshape back to (N, O, OH, OW)."""
    o = w.shape[0]
    out = w.reshape(o, -1) @ cols + b[:, None]                         # (O, N*OH*OW)
    return np.ascontiguousarray(out.reshape(o, n, OHW, OHW).transpose(1, 0, 2, 3))


def conv_numpy_im2col(x, w, b):
    return conv_from_cols(im2col_numpy(x, K, K), w, b, x.shape[0])


# Is it tinycnn's own NumPy im2col (the reference its Numba kernel is tested against)? Bit for bit:
assert np.array_equal(im2col_numpy(x, K, K), kernels.im2col_reference(x, K, K, 1, 1, 0, 0))

# %% [markdown]
# Is rung 2 the same convolution as rung 1? The two add the same 289 terms (288 products and the bias)
# in different orders, so in float32 they may differ by rounding. How much is allowed is not guessed:
# a float sum of n terms, in any order, is within γₙ · S of the exact sum (γₙ ≈ n · u, u = 2⁻²⁴ the
# float32 unit roundoff, S the sum of the terms' absolute values), so two orders are at most 2 γₙ S
# apart (tests/tolerances.py derives it). S is the same convolution run on |x|, |w| and |b|, in float64.

# %%
with threads(1):      # (all of the ladder runs on one thread: see section 9 for two)
    S = conv_numpy_im2col(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64),
                          np.abs(b).astype(np.float64))                # (N, O, OH, OW): sum of |terms|
    bound = rounding_bound(C * K * K + 1, S, np.float32)
    y_numpy = conv_numpy_im2col(x, w, b)
    t_numpy = median_time(lambda: conv_numpy_im2col(x, w, b), REPS)
assert_agree("rung 2 (NumPy im2col) vs rung 1 (loops)", y_numpy, y_loops, bound)
print(f"NumPy im2col: {t_numpy * 1e3:.3f} ms, {t_loops / t_numpy:.0f}x faster than the loops")
assert t_loops > 10 * t_numpy, "im2col should be more than an order of magnitude faster than the loops"

# %% [markdown]
# Two to three orders of magnitude (the line above; 482 times in the quiet run), from the same
# arithmetic: the loops made N · 64 · 169 = 346,112 NumPy calls, im2col makes about a dozen. The price
# is memory. `cols` holds every input pixel once for each window
# that contains it, so it is much bigger than the input; and a computer moves bytes far more slowly
# than it multiplies them. Let us count the bytes against the FLOPs.
#
# ## 4. Memory traffic: bytes moved per FLOP
#
# For one forward pass: the input x, the `cols` matrix (written by im2col, read by the multiply), the
# weights and the output. A float32 is 4 bytes.

# %%
cols = im2col_numpy(x, K, K)                                           # (C*KH*KW, N*OH*OW)
y_bytes = N * O * OHW * OHW * 4
print(f"input x:  {x.shape} {x.nbytes / 1e6:8.3f} MB")
print(f"cols:     {cols.shape} {cols.nbytes / 1e6:8.3f} MB = {cols.nbytes / x.nbytes:.2f} x the input")
print(f"weights:  {w.shape} {w.nbytes / 1e6:8.3f} MB")
print(f"output y: ({N}, {O}, {OHW}, {OHW}) {y_bytes / 1e6:8.3f} MB")
# im2col's growth factor: each of the OH*OW windows copies KH*KW pixels per channel, from H*W pixels.
assert cols.nbytes / x.nbytes == (K * K * OHW * OHW) / (HW * HW)
flops = 2 * MACS
moved_direct = x.nbytes + w.nbytes + y_bytes                           # read x and w once, write y
moved_im2col = x.nbytes + 2 * cols.nbytes + w.nbytes + y_bytes         # + write cols, read it again
print(f"FLOPs per byte, if x, w, y each cross memory once: {flops / moved_direct:.0f}")
print(f"FLOPs per byte, counting cols written and read:    {flops / moved_im2col:.0f}")

# %% [markdown]
# With a 3 × 3 kernel, `cols` is 9 × 169 / 225 ≈ 6.8 times the input (with padding "same" it would be
# 9 times). That is the price of im2col: if every number crossed memory once, the convolution would do
# about 84 FLOPs per byte moved; writing `cols` and reading it back cuts that to about 13. Both are
# high, because a matrix multiply *reuses* each number it loads many times (each column of `cols`
# meets all 64 filters, each filter meets every column). This ratio, the *arithmetic intensity*, decides
# what limits a piece of code: a core does tens of FLOPs in the time it moves a few bytes, so code that
# does a FLOP or less per byte (the im2col copy itself: none; a ReLU, a max-pool) is limited by memory,
# and code that does tens of FLOPs per byte, like the multiply, can be limited by arithmetic.
#
# Where does rung 2's time go, then? Time its pieces separately: the im2col copy, the matrix multiply,
# and the final reshuffle into (N, O, OH, OW) order.

# %%
w2d = w.reshape(O, -1)                                                 # (O, C*KH*KW)
with threads(1):
    out2d = w2d @ cols                                                 # (O, N*OH*OW)
    t_copy_numpy = median_time(lambda: im2col_numpy(x, K, K), REPS)
    t_copy_numba = median_time(lambda: kernels.im2col(x, K, K, 1, 1, 0, 0), REPS)
    t_gemm = median_time(lambda: w2d @ cols, REPS)
    t_bias_reshape = median_time(
        lambda: np.ascontiguousarray((out2d + b[:, None]).reshape(O, N, OHW, OHW).transpose(1, 0, 2, 3)), REPS)
print(f"im2col, NumPy slices:    {t_copy_numpy * 1e3:7.3f} ms  ({cols.nbytes / t_copy_numpy / 1e9:.1f} GB/s of cols written)")
print(f"im2col, Numba kernel:    {t_copy_numba * 1e3:7.3f} ms")
print(f"matrix multiply:         {t_gemm * 1e3:7.3f} ms  ({flops / t_gemm / 1e9:.1f} GFLOP/s)")
print(f"bias + NCHW reshuffle:   {t_bias_reshape * 1e3:7.3f} ms")

# %% [markdown]
# In an earlier full run of this page on a quiet machine (load average 0.9) the multiply, which does all the arithmetic, took about 1.8 ms, and the im2col copy, which
# does none, about 0.42 ms: a quarter as long again, for moving 6 MB (this run's numbers are printed
# above). The reshuffle of the output into (N, O, OH, OW) order was small (under 0.1 ms). So rung 2 already spends most of its
# time in the multiply; what is left to win around it is the copy.
#
# ## 5. Matrix-multiply efficiency: this machine's peak
#
# How fast can this machine multiply float32 matrices at all? Measure NumPy's BLAS on a large square
# product, which is the most favourable case (each number loaded is reused n times), and on the
# convolution's own shape: (64, 288) times (288, N · 169), which is short and wide.

# %%
SQ = 512 if FAST else 1024
A = rng.standard_normal((SQ, SQ), dtype=np.float32)
B = rng.standard_normal((SQ, SQ), dtype=np.float32)
P = np.empty((SQ, SQ), dtype=np.float32)
with threads(1):
    peak = 2 * SQ ** 3 / median_time(lambda: np.matmul(A, B, out=P), REPS) / 1e9
    if torch:
        At, Bt, Pt = torch.from_numpy(A), torch.from_numpy(B), torch.from_numpy(P)
        peak_torch = 2 * SQ ** 3 / median_time(lambda: torch.matmul(At, Bt, out=Pt), REPS) / 1e9
gemm_conv_rate = flops / t_gemm / 1e9
print(f"NumPy, square {SQ}x{SQ} float32 product, 1 thread: {peak:.0f} GFLOP/s   <- the peak used below")
print(f"NumPy, the convolution's (64, 288) @ (288, {N * OHW * OHW}) product, 1 thread: {gemm_conv_rate:.0f} GFLOP/s "
      f"= {gemm_conv_rate / peak:.0%} of it")
if torch:
    print(f"PyTorch's own matrix multiply (MKL), same square product, 1 thread: {peak_torch:.0f} GFLOP/s")

# The same square product in a fresh Python without the two variables that pin OpenBLAS to AVX2 kernels
# (see the text below): what NumPy would reach with the CPU's widest instructions.
PEAK_SCRIPT = f"""
import time, numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
a = np.ones(({SQ}, {SQ}), np.float32); p = np.empty_like(a)
with threadpool_limits(1, user_api="blas"):
    np.matmul(a, a, out=p); ts = []
    for _ in range({REPS}):
        t = time.process_time(); np.matmul(a, a, out=p); ts.append(time.process_time() - t)
arch = [i["architecture"] for i in threadpool_info() if i["user_api"] == "blas"][0]
print(arch, 2 * {SQ} ** 3 / float(np.median(ts)) / 1e9)
"""


def run_without_blas_pin(script):
    """Run a Python script in a fresh process without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; its output."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          check=True).stdout


arch_free, rate_free = run_without_blas_pin(PEAK_SCRIPT).split()
peak_free = float(rate_free)
print(f"NumPy without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (kernels for {arch_free}), 1 thread: "
      f"{peak_free:.0f} GFLOP/s")
print("load average now: %.1f %.1f %.1f" % os.getloadavg())

# %% [markdown]
# Three things to read here.
#
# * **The peak depends on the instructions the library uses.** This machine's environment sets
#   `OPENBLAS_CORETYPE=Haswell` (and `OPENBLAS_L2_SIZE`), which makes NumPy's OpenBLAS use its AVX2
#   kernels although the CPU has AVX-512. AVX-512 instructions work on 16 float32 numbers at once, AVX2
#   on 8, and in the quiet run the fresh process without those two variables showed it: nearly twice
#   the rate (226 against 123 GFLOP/s). On this page's loaded run the two printed rates are close: with
#   other programs on both cores, neither product gets a core to itself. The rungs below all use NumPy
#   as configured, and the page calls its square-product rate "the peak"; it is not the CPU's limit. (The benchmark suite, `python -m benchmarks`, removes the two
#   variables; tests keep them.)
# * **The convolution's own product is nearly as efficient** as the square one (91 % in the quiet run; this run's share is printed above): its inner
#   dimension of 288 and its 5,408 columns are still large enough for each loaded number to be reused
#   many times. No im2col convolution can beat its own matrix multiply, so this rate is the ceiling
#   of rungs 2 to 4.
# * PyTorch's matrix multiply (Intel's MKL) lands near NumPy's configured rate on this AMD CPU.
#
# ## 6. Rung 3: the copy compiled with Numba
#
# Rung 3 replaces the NumPy slices by tinycnn's Numba kernel `kernels.im2col`. Numba compiles the
# Python loops below to machine code the first time they run (and caches the result on disk), so the
# loops cost what loops cost in C: no interpreter, no temporary arrays. It writes each row of `cols`
# in one pass, in the order memory is laid out, and `prange` splits the rows between threads.

# %% tags=["same-output"]
quote(kernels.im2col)

# %%
def conv_numba_im2col(x, w, b):
    return conv_from_cols(kernels.im2col(x, K, K, 1, 1, 0, 0), w, b, x.shape[0])


with threads(1):
    y_numba = conv_numba_im2col(x, w, b)
    t_numba = median_time(lambda: conv_numba_im2col(x, w, b), REPS)
assert_agree("rung 3 (Numba im2col) vs rung 2 (NumPy im2col)", y_numba, y_numpy, bound)
print(f"Numba im2col: {t_numba * 1e3:.3f} ms ({t_numpy / t_numba:.2f}x rung 2)")

# %% [markdown]
# The two rungs build the same `cols` and call the same matrix multiply, so they agree exactly (a
# difference of 0), and any speed difference comes from the copy alone. Here the surprise: on one
# thread the Numba copy is *not* faster than NumPy's (1.2 against 0.42 ms in an earlier full run of this page on a quiet machine (load average 0.9); this run's section 4
# printed the same order), and there rung 3 was slower than rung 2 (0.73 times its speed: 3.20
# against 2.35 ms, 0.85 ms more, about the 0.81 ms between the two copies; on this loaded run the two
# rungs' times are too noisy to separate them). NumPy's nine slice copies are already compiled
# loops; with only nine calls there is no interpreter overhead left to remove, and compiling a loop is
# no magic beyond that. Numba pays where NumPy cannot express the work as a few large array
# operations: col2im in the backward pass, where overlapping windows must *add up*, or max-pooling that
# also records which input won. The benchmark suite's per-layer table (benchmarks/results/latest.md,
# its run of 2026-11-27 03:31, batch 64, two threads on a shared machine) shows it: max-pool forward
# and backward take 1.39 and 0.45 ms in tinycnn's Numba kernels against 18.18
# and 10.97 ms in its plain-NumPy engine.
#
# ## 7. Rung 4: tinycnn's executor
#
# `tc.Conv2D` itself is written to read like its derivation (tutorial 1 quotes it). What runs when a
# network trains is the executor, `tinycnn.fast`: `Sequential` compiles its layers into a plan of fast
# ops, and a few named passes remove the memory traffic around the multiply (`tinycnn/fast/ops/conv.py`
# and benchmarks/PERFORMANCE.md have the measurements):
#
# * **layout, no reshuffle copy**: its im2col (`im2col_cm`) orders the columns with the images
#   fastest, so the product `w2d @ cols` comes out as (O, OH, OW, N) in memory; the op hands it on as an
#   (N, O, OH, OW) *view* ("channel-major") instead of copying it, and the next ops read that layout
#   directly. With the images fastest, im2col and col2im move runs of N contiguous numbers instead of
#   short image rows;
# * **fusion, the bias inside the multiply**: `cols` gets an extra row of ones and the weights the bias
#   as an extra column, so there is no separate pass over the output to add it;
# * **memory, no fresh memory each call**: `cols` is a workspace reused while the shape stays the same.
#
# Here the plan holds one layer: `tc.fast.compile([layer])`. Its input is timed twice: channel-major,
# as the previous op of a network hands it on, and in plain NCHW order (one transposing copy first).

# %%
layer = tc.Conv2D(C, O, K, rng=np.random.default_rng(0))
layer.weight.data[...] = w
layer.bias.data[...] = b
plan = tc.fast.compile([layer])                        # the executor's plan for this one layer
# Inside a network the previous layer hands over a channel-major view: (N, C, H, W) indices on
# (C, H, W, N) memory. Build one from x: the same values, laid out as the seed CNN's first block leaves them.
x_cm = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)   # (N, C, H, W) view
assert np.array_equal(x_cm, x) and not x_cm.flags.c_contiguous
with threads(1):
    y_fast = plan.forward(x_cm)
    t_fast = median_time(lambda: plan.forward(x_cm), REPS)
    t_fast_nchw = median_time(lambda: plan.forward(x), REPS)
print("output:", y_fast.shape, "C-contiguous:", y_fast.flags.c_contiguous,
      "| its memory in (O, OH, OW, N) order:", y_fast.transpose(1, 2, 3, 0).flags.c_contiguous)
assert_agree("rung 4 (executor) vs rung 3 (Numba im2col)", y_fast, y_numba, bound)
print(f"executor's Conv2D, channel-major input (inside a network): {t_fast * 1e3:.3f} ms ({t_numba / t_fast:.2f}x rung 3)")
print(f"executor's Conv2D, plain NCHW input (one transposing copy first): {t_fast_nchw * 1e3:.3f} ms")

# The same layer and shapes timed in a fresh process whose NumPy uses OpenBLAS's AVX-512 kernels
# (section 5); timing only, the numbers computed are those checked above.
FAST_PATH_SCRIPT = f"""
import time, numba, numpy as np, tinycnn as tc
from threadpoolctl import threadpool_limits
rng = np.random.default_rng(0)
x = rng.standard_normal(({N}, {C}, {HW}, {HW}), dtype=np.float32)
x_cm = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
plan = tc.fast.compile([tc.Conv2D({C}, {O}, {K}, rng=rng)])
with threadpool_limits(1, user_api="blas"):
    numba.set_num_threads(1); plan.forward(x_cm); ts = []
    for _ in range({REPS}):
        t = time.process_time(); plan.forward(x_cm); ts.append(time.process_time() - t)
print(float(np.median(ts)))
"""
t_fast_avx512 = float(run_without_blas_pin(FAST_PATH_SCRIPT))
print(f"executor's Conv2D, channel-major input, NumPy with AVX-512 kernels (fresh process): {t_fast_avx512 * 1e3:.3f} ms")

# %% [markdown]
# For one forward pass of one layer on one thread, the multiply still dominates, but in an earlier full run of this page on a quiet machine (load average 0.9) rung 4
# came out 1.6 times as fast as rung 3 (2.00 ms; this run's ratio is printed above). Most of that is its im2col: the columns are ordered
# with the images fastest, so the kernel copies runs of 32 contiguous numbers (one per image) instead
# of image rows of 13 with a bounds test per element (benchmarks/PERFORMANCE.md, 'Channel-major layout', measured the
# same change at 2.3 -> 0.8 ms for im2col and 4.7 -> 1.1 ms for col2im at batch 64). Over a whole
# network and its backward pass these savings add up. In the quiet run the line that stood out was the
# last: the same layer, with NumPy using OpenBLAS's AVX-512 kernels, took 1.19 ms instead of 2.00, so
# the multiply's instruction set was worth more there than everything else on the ladder after rung 2.
# (On this loaded run the fresh process's time is no faster: a busy machine hides the difference.)
#
# And PyTorch, on the same data and the same single thread, as a yardstick (skipped if PyTorch is not
# installed), once as installed and once with its oneDNN convolution kernels switched off. Both are
# checked against tinycnn with the same bound.

# %%
if torch:
    xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
    with threads(1), torch.no_grad():
        y_torch = torch.nn.functional.conv2d(xt, wt, bt).numpy()
        t_torch = median_time(lambda: torch.nn.functional.conv2d(xt, wt, bt), REPS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)           # (a note about Intel GPUs, not relevant here)
            with torch.backends.mkldnn.flags(enabled=False):        # PyTorch without oneDNN's kernels
                y_torch_plain = torch.nn.functional.conv2d(xt, wt, bt).numpy()
                t_torch_plain = median_time(lambda: torch.nn.functional.conv2d(xt, wt, bt), REPS)
    assert_agree("PyTorch vs rung 4 (executor)", y_torch, y_fast, bound)
    assert_agree("PyTorch without oneDNN vs rung 4 (executor)", y_torch_plain, y_fast, bound)
    print(f"PyTorch conv2d: {t_torch * 1e3:.3f} ms; with oneDNN switched off: {t_torch_plain * 1e3:.3f} ms")
else:
    t_torch = None
    print("PyTorch is not installed: no PyTorch rung")

# %% [markdown]
# In an earlier full run of this page on a quiet machine (load average 0.9) PyTorch was about 2.0 times faster than tinycnn's fast path (1.015 against 2.002 ms; then the fast path lived in `tc.Conv2D`, now it is the executor's op); this
# run's times are printed above. PyTorch reports that it uses AVX-512 code (the first cell prints the
# capability), and in the quiet run its rate (196 GFLOP/s) was above what NumPy's BLAS reaches as
# configured and 87 % of NumPy's AVX-512 rate of section 5. Switching oneDNN off slowed it down by only
# about 5 % there (1.062 ms), so its lead is not one particular convolution algorithm; how PyTorch
# computes it inside was not taken apart for this page. In the quiet run tinycnn with AVX-512 BLAS
# kernels closed most of the gap (1.188 against 1.015 ms), which points at the instruction set, for
# tinycnn's own product at least.
#
# ## 8. The ladder in one picture
#
# All rungs on one thread, as time per forward pass (log scale: each grid line is ten times the one
# below) and as GFLOP/s against the machine's peak from section 5.

# %%
names = ["1 loops", "2 NumPy im2col", "3 Numba im2col", "4 executor"] + (["PyTorch"] if torch else [])
times = [t_loops, t_numpy, t_numba, t_fast] + ([t_torch] if torch else [])
rates = [flops / t / 1e9 for t in times]


def page_faults_per_call(fn, reps=5):
    """Minor page faults per call of fn(): pages of fresh memory the operating system had to hand over."""
    try:
        import resource                     # Unix only
    except ImportError:
        return float("nan")
    fn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(reps):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / reps


with threads(1):
    faults = [page_faults_per_call(lambda: conv_loops(x, w, b), 1),
              page_faults_per_call(lambda: conv_numpy_im2col(x, w, b)),
              page_faults_per_call(lambda: conv_numba_im2col(x, w, b)),
              page_faults_per_call(lambda: plan.forward(x_cm))]
    if torch:
        with torch.no_grad():
            faults.append(page_faults_per_call(lambda: torch.nn.functional.conv2d(xt, wt, bt)))
# "of AVX2": against NumPy's square product as configured here (AVX2 kernels), the rate the page calls
# the peak; "of AVX-512": against the same product with OpenBLAS's AVX-512 kernels. Neither is the CPU's
# theoretical peak, so a rung can exceed 100 % of the first.
print(f"{'rung':16s} {'ms':>10s} {'vs loops':>9s} {'GFLOP/s':>8s} {'of AVX2':>8s} {'of AVX-512':>10s} "
      f"{'ns / multiply-add':>18s} {'page faults / call':>19s}")
for name, t, r, f in zip(names, times, rates, faults):
    print(f"{name:16s} {t * 1e3:10.3f} {t_loops / t:8.0f}x {r:8.2f} {r / peak:8.1%} {r / peak_free:10.1%} "
          f"{t / MACS * 1e9:18.4f} {f:19.0f}")
print("load average now: %.1f %.1f %.1f" % os.getloadavg())
assert all(t_loops > 10 * t for t in times[1:]), "every im2col rung is > 10x faster than the loops"

colors = ["#b0b0b0", "#6baed6", "#3182bd", "#08519c", "#e6550d"][:len(names)]
labels = [name.replace(" ", "\n", 1) for name in names]                 # two-line tick labels
fig, ax = plt.subplots(figsize=(8, 4.5))
ax.bar(labels, [t * 1e3 for t in times], color=colors)
ax.set_yscale("log")
ax.set_ylim(top=max(times) * 1e3 * 4)
ax.set_ylabel("milliseconds per forward pass (log scale)")
ax.set_title(f"Conv2D {C}->{O}, 3x3, batch {N} on {HW}x{HW}, 1 thread (CPU time, median)")
for i, t in enumerate(times):
    ax.text(i, t * 1e3 * 1.2, f"{t * 1e3:.3g} ms", ha="center", fontsize=9)
ax.grid(axis="y", which="major", alpha=0.3)
fig.tight_layout()
save_figure(fig, "06_ladder_times", "Time per forward pass of each rung, log scale, one thread")

fig, ax = plt.subplots(figsize=(11, 4.5))
ax.bar(labels, rates, color=colors)
ax.axhline(peak_free, color="k", linestyle="-.", label=f"NumPy's square product, AVX-512 kernels ({peak_free:.0f})")
ax.axhline(peak, color="k", linestyle="--", label=f"NumPy's square product, as configured ({peak:.0f})")
if torch:
    ax.axhline(peak_torch, color="#e6550d", linestyle="--", label=f"PyTorch's square product ({peak_torch:.0f})")
ax.axhline(gemm_conv_rate, color="k", linestyle=":", label=f"NumPy, the convolution's own product ({gemm_conv_rate:.0f})")
ax.set_yscale("log")
ax.set_ylabel("GFLOP/s (log scale)")
ax.set_title("GFLOP/s of each rung, 1 thread; in the bars: fraction of NumPy's AVX2 square-product rate")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, title="matrix multiply, 1 thread")
for i, r in enumerate(rates):
    inside = r > 10
    ax.text(i, r * (0.5 if inside else 1.2), f"{r / peak:.1%}", ha="center", fontsize=9,
            color="white" if inside else "black")
fig.tight_layout()
save_figure(fig, "06_gflops_vs_peak", "GFLOP/s of each rung against the machine's matrix-multiply rates")

# %% [markdown]
# Read the two pictures together. The first step, from loops to im2col, is worth two to three orders
# of magnitude and is all about interpreter overhead: it turns a third of a million small calls into a
# dozen large ones. The loops reach about a tenth of a percent of NumPy's square-product rate; the
# im2col rungs reach about half to four fifths of it (50.5–80.7 % in the quiet run; this run's are in
# the table). Their ceiling is the convolution's own product (dotted line): the rest of their time is
# the im2col copy, the memory traffic of section 4. PyTorch's bar can go above NumPy's rate as configured (dashed): that rate is what
# OpenBLAS reaches with its AVX2 kernels, not the CPU's limit, so "more than 100 %" only means faster
# than that. Why PyTorch is faster this page does not prove: its library (oneDNN) reports AVX-512 code
# (the first cell printed the CPU capability it uses), and NumPy's own rate with AVX-512 kernels
# (dash-dotted) is higher too, which fits wider instructions as a cause, but oneDNN also differs in its
# blocking, its packing and its direct convolution algorithm, and we did not separate those. The page faults column is 0 for every
# rung: after the first call, the memory allocator hands back memory the process already has, so at
# this size a fresh array each call costs no page faults; benchmarks/PERFORMANCE.md ('Recycled output arrays and memory planning') found that
# it did cost time at batch 256, where arrays above 32 MB come fresh from the operating system.
#
# ## 9. Threads: 1 versus 2, and oversubscription
#
# This machine has two cores. BLAS, Numba and PyTorch can each use both. Time the square product, the
# executor's Conv2D and PyTorch with one and with two threads.

# %%
def time_at(n_threads):
    # A pause before each measurement: after a multi-threaded product, OpenBLAS's idle worker keeps
    # spinning on its core for ~0.1 s, and whatever runs next on two threads finds that core taken
    # (benchmarks/PERFORMANCE.md, 'Split matrix multiply'). tinycnn's own products never wake that worker.
    with threads(n_threads):
        time.sleep(0.3)
        res = {"square matrix multiply": median_time(lambda: np.matmul(A, B, out=P), REPS, time.perf_counter)}
        time.sleep(0.3)
        res["executor Conv2D forward"] = median_time(lambda: plan.forward(x_cm), REPS, time.perf_counter)
        if torch:
            time.sleep(0.3)
            with torch.no_grad():
                res["PyTorch conv2d"] = median_time(lambda: torch.nn.functional.conv2d(xt, wt, bt), REPS,
                                                    time.perf_counter)
    return res


def show(title, one, two, note=None):
    print(f"{title} ({note or 'load average over the last minute: %.1f' % os.getloadavg()[0]})")
    for key in one:
        print(f"  {key:24s} 1 thread {one[key] * 1e3:8.3f} ms   2 threads {two[key] * 1e3:8.3f} ms   "
              f"speed-up {one[key] / two[key]:.2f}x")


quiet_1, quiet_2 = time_at(1), time_at(2)
show("as the machine is now", quiet_1, quiet_2)

# %% [markdown]
# Two threads can at best halve the time, and only for work that splits evenly and is large enough
# that starting the threads and waiting for the slower of the two is cheap. In an earlier full run of this page on a quiet machine (load average 0.9) the big square
# product came close to 2× (1.98×) and PyTorch's convolution gained 1.52×, but tinycnn's forward gained
# nothing: 0.95×, 2.025 ms on two threads against 1.926 ms on one. On this page's loaded run the table
# above is dominated by the other programs: speed-ups far below 1, and "speed-ups" above 2, which two
# threads cannot give, mean the two measurements met different amounts of competition, not that the
# code changed. That line moves more from run to run than any other: other full runs of this page
# printed 1.17×, 1.14× and 1.76× for it (the last of them with this same cell, on tinycnn as it was
# before lanes). It is one call of about 2 ms whose parallel steps each wait for the slower half, and
# its 25 timed calls take about a twentieth of a second, so whatever else runs on the second core of
# this shared 2-core machine in that moment can weigh heavily on it; the next table shows how far a busy
# second core pulls it down. Over a whole training step in the quiet run, with the kernels split the
# same way (the "lanes off" line at the end of this section), two threads did gain: 1.59×.
#
# A two-thread gain for tinycnn needs two things (benchmarks/PERFORMANCE.md, 'Split matrix multiply').
# First, tinycnn splits its products over its own threads with BLAS set to one thread: after a
# multi-threaded product, OpenBLAS's idle worker keeps spinning on its core for about 0.1 s, and the
# Numba kernel that comes next finds that core taken. Second, `time_at` pauses before each
# measurement for the same reason: without the pause, the square product measured just before it
# left its worker spinning, and an earlier run of this cell showed tinycnn's forward *slower* on two
# threads (0.96×).
#
# Now the failure everyone meets sooner or later: **oversubscription**, more busy threads than cores.
# Below, one extra busy process (a Python loop that does nothing, started here and stopped right
# after) competes for the two cores, as another user's job or a second thread pool would. A one-thread
# computation then shares a core with it at worst; a two-thread computation splits its work in two
# halves and must wait for *both*, and one of them is always the one queued behind the intruder.

# %%
import resource                                       # Unix: the CPU time a finished child used

children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
hog_start = time.perf_counter()
hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
try:
    time.sleep(0.2)                                   # let it start spinning
    busy_1, busy_2 = time_at(1), time_at(2)
finally:
    hog.kill()
    hog.wait()
hog_wall = time.perf_counter() - hog_start
children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
hog_cpu = (children_after.ru_utime + children_after.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
# (a one-minute load average says little about a process that lived for a few seconds: measure it instead)
show("with one extra busy process", busy_1, busy_2,
     f"the busy process ran {hog_wall:.1f} s and used {hog_cpu:.1f} s of CPU: {hog_cpu / hog_wall:.0%} of one core")

# %% [markdown]
# Compare the two tables. In an earlier full run of this page on a quiet machine (load average 0.9) the one-thread times hardly moved, but the square product went from
# 1.98× faster on two threads to 1.07× (almost no gain), and tinycnn's forward from 0.95× to 0.78×:
# clearly *slower* on two threads than on one (2.468 against 1.917 ms), because every one of its
# parallel steps waited for the half that was queued behind the intruder; PyTorch's convolution kept
# most of its gain (1.39× against 1.52×). The line above the second table says how much CPU the
# intruder itself got (measured from its own CPU time, not a one-minute load average, which says little
# about a process that lives a few seconds): on a machine that is already full, it gets only a share of
# a core, and the two tables differ by little more than noise, as on this page's run. How much the
# intruder costs depends on what else the machine runs and changes from run to run; the numbers are
# not asserted. On a busier moment, with the load average
# near 4 before the intruder started, a full-size draft run of this page saw two threads 2 to 30 times
# *slower* than one for all three, even without it.
#
# Inside one program the same thing happens when two thread pools each start one thread per core:
# NumPy's BLAS pool and Numba's pool (or PyTorch's OpenMP pool) on two cores make four busy threads.
# It is worst when idle threads *spin* (busy-wait for the next job instead of sleeping for a while), as
# OpenMP's typically do: after every Numba kernel its threads keep spinning while BLAS wants the cores.
# benchmarks/PERFORMANCE.md ('Numba threading layer') records a training step of the seed CNN at batch 4 going from 3 ms on one
# thread to 540 ms on two for that reason; tinycnn therefore selects Numba's "workqueue" threading
# layer, whose threads sleep (see `tinycnn/kernels/__init__.py`). The rules of thumb:
#
# * threads across all pools should not exceed the cores (`OPENBLAS_NUM_THREADS`, `NUMBA_NUM_THREADS`,
#   `torch.set_num_threads`, or threadpoolctl as here);
# * on a shared or busy machine, one thread is often faster than two and is always more predictable;
# * measure with the load average in view, and trust medians, not single runs.
#
# ### Two cores for a whole training step: split every kernel, or split the batch
#
# Everything above put two cores on *one* call. A training step is a chain of such calls, a forward
# and a backward through every layer, and there are two ways to put two cores to work on it.
#
# * **Split every kernel.** Each matrix product and each Numba kernel divides its own work in two, one
#   half per core, and the halves meet again at its end. For the seed CNN at batch 64 that is about
#   twenty meetings per step (8 of its 11 products and 13 of its 17 Numba kernels; the smaller ones are
#   not worth splitting and stay on one core). Each costs a wake-up of the other core's thread and a
#   wait for the slower half, so the shorter kernels (a ReLU, the pooling of a small map) gain little
#   or nothing from being split (tinycnn/_jit.py has what a hand-over costs).
# * **Split the batch into lanes.** Image i's forward and backward never look at image j's. So tinycnn
#   cuts a batch of 64 into two *lanes* of 32, and each core takes its lane through the whole network,
#   first layer to last, with every kernel serial and BLAS on one thread. Each lane runs its own
#   copies of the layers (`Layer.replica()`: the same weight arrays, but its own caches and gradients).
#   The lanes meet twice per step: when the forward joins their outputs, so that the loss sees the
#   whole batch, and when the backward adds up their weight gradients.
#
# Lanes are what `Sequential.forward`, `Sequential.backward` and `fit` do when Numba has two or more
# threads and each lane gets enough work: at least 8 images (`lanes.MIN_LANE_BATCH`) and 25 million
# forward multiply-adds (`lanes.MIN_LANE_MACS`; the seed CNN has about 5 million per image). A single layer
# called on its own, as in the table above, is never cut. Two Python threads can only run at the
# same time because their work lets go of Python's global interpreter lock (the GIL) while it runs:
# NumPy's BLAS calls do, and tinycnn compiles every Numba kernel with `nogil=True` (tinycnn/_jit.py).
# Without that the two lanes would take turns on one core.
#
# The cell below times a whole training step (forward, loss, backward, SGD step) of the seed CNN at
# batch 64 three ways: on 1 thread; on 2 threads with lanes (as tinycnn ships); and on 2 threads with
# lanes switched off (`tinycnn.lanes.set_enabled(False)`), so that every kernel is split instead. As
# above, each measurement starts with a pause, then runs untimed steps for a quarter of a second,
# because a core that sat idle through the pause needs a few steps to come back to full speed
# (benchmarks/timing.py). The three setups take turns, so a busy moment of the machine hits all of
# them. Before the timing, the cell checks that lanes on and off compute the same loss and gradients.

# %%
from tinycnn.fast.passes import lanes

STEP_BATCH = 16 if FAST else 64                        # 2 lanes of >= lanes.MIN_LANE_BATCH images, each
WIDTHS = (32, 64, 128)                                   # with >= lanes.MIN_LANE_MACS multiply-adds: the seed CNN
STEP_REPS, ROUNDS = (3, 1) if FAST else (20, 3)
net_rng = np.random.default_rng(16)
w1, w2, w3 = WIDTHS


def seed_cnn(dtype, rng):
    return tc.Sequential(tc.Conv2D(3, w1, 3, dtype=dtype, rng=rng), tc.ReLU(), tc.MaxPool2D(2),    # 32 -> 30 -> 15
                         tc.Conv2D(w1, w2, 3, dtype=dtype, rng=rng), tc.ReLU(), tc.MaxPool2D(2),   # 15 -> 13 -> 6
                         tc.Conv2D(w2, w3, 3, dtype=dtype, rng=rng), tc.ReLU(), tc.MaxPool2D(2),   # 6 -> 4 -> 2
                         tc.Flatten(), tc.Dense(w3 * 2 * 2, 10, dtype=dtype, rng=rng))


cnn = seed_cnn(np.float32, net_rng)
xb = net_rng.standard_normal((STEP_BATCH, 3, 32, 32), dtype=np.float32)      # (N, 3, 32, 32)
yb = net_rng.integers(0, 10, STEP_BATCH)                                     # (N,) labels
ce = tc.SoftmaxCrossEntropy()


def with_lanes(on, fn):
    """fn() with lanes switched on or off, and the old setting restored afterwards."""
    old = lanes.set_enabled(on)
    try:
        return fn()
    finally:
        lanes.set_enabled(old)


def loss_and_gradients():
    """One forward + backward at the current weights: loss, logits (N, 10), every parameter's gradient."""
    logits = np.array(cnn(xb))
    loss = ce(logits, yb)
    cnn.backward(ce.backward(), input_grad=False)      # nobody needs the gradient of the images
    return loss, logits, [p.grad.copy() for p in cnn.parameters()]


with threads(2):
    loss_on, z_on, grads_on = with_lanes(True, loss_and_gradients)
    n_lanes = len(cnn.plan().last.slices)                  # how the executor cut that batch
    loss_off, z_off, grads_off = with_lanes(False, loss_and_gradients)
print(f"batch of {STEP_BATCH} on 2 threads: cut into {n_lanes} lanes")
assert n_lanes == 2 or numba.config.NUMBA_NUM_THREADS < 2
dz = float(np.abs(z_on - z_off).max())
print(f"logits: max |difference| {dz:.1e} ({dz / np.spacing(np.float32(np.abs(z_off).max())):.0f} units "
      f"in the last place of the largest logit)")
# The loss: the same code, on logits that differ by at most dz. Its slope in logit k of image n is
# (p - t) / N, whose absolute values add up to at most 2 / N per image, so the logits move it by at
# most 2 dz. Each run also rounds, per image: z - max z (up to 2 max|z| units of u, felt twice), exp
# and log (3.5 and 4.5 units: NumPy's accuracy, as in tests/tolerances.py; the log is of a sum in
# [1, K]), K additions and a subtraction; then the mean of N positive terms. In all, per run, at most
# gamma_m (1 + L) with m = N + K + 4 + 4.5 ln K + 4 max|z|; rounding_bound is twice that.
n_loss = STEP_BATCH + 10 + int(np.ceil(4 + 4.5 * np.log(10) + 4 * np.abs(z_off).max()))
assert_agree("loss, lanes vs lanes off", loss_on, loss_off,
             2 * dz + rounding_bound(n_loss, 1 + loss_off, np.float32))
# A gradient is a sum over the batch that the lanes add up as two partial sums (then one sum of the
# two). In float32 that is not the only difference: the terms themselves differ in their last bits,
# as the logits above do, because BLAS rounds a product of 32 columns differently from one of 64. So
# the gradients are compared on a float64 copy of the network (same weights, same images), where both
# effects are ~1e-16 relative, against the project's bound for two float64 implementations of one
# computation: 1e-10 of each tensor's largest entry (tests/tolerances.py, as tests/test_lanes.py uses).
cnn64 = seed_cnn(np.float64, np.random.default_rng(0))
cnn64.load_state_dict(cnn.state_dict())                # the same weights, exactly, in float64


def gradients64():
    ce(cnn64(xb.astype(np.float64)), yb)
    cnn64.backward(ce.backward(), input_grad=False)
    return [p.grad.copy() for p in cnn64.parameters()]


with threads(2):
    grads_on, grads_off = with_lanes(True, gradients64), with_lanes(False, gradients64)
for name, g_on, g_off in zip(dict(cnn64.named_parameters()), grads_on, grads_off):
    assert_agree(f"{name + '.grad':14s} (float64) lanes vs lanes off", g_on, g_off, 1e-10 * np.abs(g_off).max())
rel = max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(grads_on, grads_off))
print(f"float64: largest difference of a gradient, relative to that gradient's largest entry: {rel:.1e}")

sgd = tc.SGD(cnn.parameters(), lr=0.01, momentum=0.9)


def train_step():
    ce(cnn(xb), yb)
    cnn.backward(ce.backward(), input_grad=False)
    sgd.step()


def timed_steps():
    """STEP_REPS wall-clock times of train_step, after the pause and a quarter second of untimed steps."""
    time.sleep(0.3)
    start = time.perf_counter()
    while time.perf_counter() - start < 0.25:
        train_step()
    times = []
    for _ in range(STEP_REPS):
        t0 = time.perf_counter()
        train_step()
        times.append(time.perf_counter() - t0)
    return times


def step_times(n_threads, laned):
    with threads(n_threads):
        return with_lanes(laned, timed_steps)


SETUPS = {"1 thread": (1, True), "2 threads, lanes": (2, True), "2 threads, lanes off": (2, False)}
measured = {name: [] for name in SETUPS}
order = list(SETUPS)
for r in range(ROUNDS):                                # each round starts with the next setup
    for name in order[r % len(order):] + order[:r % len(order)]:
        measured[name] += step_times(*SETUPS[name])
step_ms = {name: 1e3 * float(np.median(t)) for name, t in measured.items()}
assert lanes.set_enabled(True), "with_lanes should have switched lanes on again"
print(f"training step, batch {STEP_BATCH}, channels {WIDTHS}, median of {ROUNDS * STEP_REPS} "
      f"(load average {os.getloadavg()[0]:.1f}):")
for name, t in step_ms.items():
    print(f"  {name:22s} {t:7.2f} ms   speed-up over 1 thread {step_ms['1 thread'] / t:.2f}x")
print("lanes against split kernels, both on 2 threads: "
      f"{step_ms['2 threads, lanes off'] / step_ms['2 threads, lanes']:.2f}x")

# %% [markdown]
# Compare the speed-ups printed above. On an otherwise idle machine the lanes should come out ahead:
# each core does the one-thread work on half the images and the two meet twice per step, while the
# split kernels meet about twenty times and each time wait for the slower half. In an earlier full run of this page on a quiet machine (load average 0.9) they did:
# 14.49 ms with lanes against 17.48 ms with split kernels, 1.92× and 1.59× the speed of one thread
# (27.78 ms), so the lanes were 1.21× faster. When other programs are using the cores, as on this
# page's run (load average about 4), the times are several times longer and their order can flip: at
# every meeting the step waits for whichever half was queued behind another program.
#
# The two ways agree within rounding, not bit for bit, and here is why. A weight's gradient is a sum
# over every image of the batch (and, for a convolution, every output position). With lanes it is
# added up as two partial sums, one per lane, and then the two are added; split inside the kernel,
# the product adds the same terms in its own order (a long sum cut into two halves of its own).
# Floating-point addition is not associative, so the last bits differ. The logits can differ in their
# last bits too (the quiet run printed 4 units in the last place of the largest logit; this run printed
# the line above): a lane's products have other shapes than the split ones (32 images' columns,
# against half of the 64 images' columns), and BLAS may add up some entries of a differently shaped
# product in another order. That is why the
# gradients were compared in float64, where all of this stays near 1e-15 of the values (1.1e-15 at
# most, the line above): in float32 the same effects are ~1e-7, and a float32 check would need a
# bound for the differences carried from layer to layer as well as for the sums. Nothing else
# changes: image i's numbers never meet image j's, so no lane needs anything from the other.
#
# That last fact decides when lanes are allowed. Every layer says whether its output for image i
# depends on image i alone (`per_sample`). BatchNorm2D in training normalizes with the mean and
# variance of the whole batch, and Dropout in training draws its masks from one random generator, in
# order; both say `per_sample = False` then, and a network that contains either runs uncut, with split
# kernels (in evaluation mode, with running statistics, both are per-sample again). tinycnn/lanes.py
# explains the rest, including one liberty a lane takes with its private copies: a ReLU right before
# a MaxPool2D runs after it, on the four times smaller pooled map, which gives the same bits forward
# and backward. `python -m benchmarks` makes the same comparison beside PyTorch, with NumPy's
# AVX-512 kernels (benchmarks/whatif.py, the variant "without lanes").
#
# **What you have seen.** The same convolution, computed four ways that agree to within rounding,
# spans orders of magnitude in speed. Interpreter overhead is removed by making few calls that each do
# much work: im2col, hundreds of times faster than the loops here. After that the matrix multiply does
# the arithmetic at nearly the rate BLAS reaches on any product, and what remains is the memory traffic
# around it (the im2col copy, reshuffles, fresh buffers): for one layer's forward pass the later rungs
# differ by up to 1.6 times, and their savings count over a whole network and its backward pass. The
# biggest lever left was the multiply's instruction set (AVX-512 against AVX2). Threads help large,
# evenly split work on an otherwise idle machine, and hurt when there are more busy threads than
# cores; for a whole training step, the fewer times the cores must meet the better, which is why
# tinycnn cuts the batch into lanes that meet twice per step instead of splitting every kernel.
# `python -m benchmarks` measures the same ladder with the backward pass as well
# (benchmarks/ladder.py), and whole training steps against PyTorch.

# %%
print("load average (1, 5, 15 min) at the end: %.1f %.1f %.1f" % os.getloadavg())

# %% [markdown]
# ## Exercises
#
# Each exercise below comes with a cell: a function (or class) for you to complete, and a check that
# runs it on cases whose answer it knows another way and prints `OK`, or `NOT OK` with what differs.
# As shipped, the functions only raise `NotImplementedError`, so the checks say "not attempted yet".
# Reference solutions are in [`solutions/solutions_06.py`](solutions/solutions_06.py); try first.
#
# **Exercise 6.1: the size of im2col's buffer.** Write `im2col_bytes(n, c, h, w, k, s, p, itemsize)`
# and use it: how many times larger than the input is the buffer of this page's layer, and how does a
# stride of 2 change that?

# %%
from exercises import ex06


def im2col_bytes(n, c, h, w, k, s, p, itemsize):
    """Bytes of the (C*k*k, N*OH*OW) column matrix (no row of ones)."""
    raise NotImplementedError      # your code here


ex06.check_im2col_bytes(im2col_bytes)

# %% [markdown]
# **Exercise 6.2: im2col in k² slices.** Write an im2col that makes one strided NumPy slice per kernel
# offset (i, j) instead of one per window, in the row and column order of `kernels.im2col_reference`,
# and time it against rung 2.

# %%
def my_im2col(x, k, s, p):
    """x (N, C, H, W) -> (C*k*k, N*OH*OW), columns ordered (n, oh, ow), rows (c, i, j)."""
    raise NotImplementedError      # your code here


ex06.check_im2col(my_im2col)

# %% [markdown]
# **Exercise 6.3: a channel-major array.** Make an array with the shape and values of an NCHW `x`
# whose memory is laid out as (C, H, W, N), as `Conv2D`'s outputs are (section 6). Which NumPy
# operation copies, and which only changes the strides?

# %%
def channel_major(x):
    """Same shape and values as x (N, C, H, W); memory in (C, H, W, N) order."""
    raise NotImplementedError      # your code here


ex06.check_channel_major(channel_major)
