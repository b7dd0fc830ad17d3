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
# The layers of tutorials 1 to 5 are written to read like their equations: `Conv2D.forward` is im2col
# and one matrix multiply, `ReLU.backward` is one line. They are tinycnn's *definition* of what a
# network computes. But when a `Sequential` runs, it does not call them one after the other: it hands
# them to tinycnn's **executor**, `tinycnn.fast`, which compiles them, like a small compiler, into a
# **plan** that computes the same numbers faster. This tutorial opens the executor up:
#
# 1. **a speed ladder** for one convolution: Python loops, the plain layer, the executor's op and
#    PyTorch, each checked against the one before and timed: why the plain layer is already hundreds
#    of times faster than loops, and what is left to win;
# 2. **what the executor takes** (a model) and **the graph it lowers it to**, printed for a small
#    network and for a residual one;
# 3. **the passes**, one at a time: the executor compiled with a growing list of passes, the plan
#    printed after each, a training step timed after each, and a small measurement of *why* each
#    trick is fast: memory layout, fusion, pruning, memory reuse, threads and batch lanes;
# 4. **how tinycnn proves fast equals plain**: a plain and a fast model side by side, every tensor
#    compared against a stated bound, and a deliberately broken plan that the check catches;
# 5. exercises.
#
# **About the timings.** Every number on this page was measured by the page itself, in the run shown
# here, on a 2-core machine that other programs may share (the load average is printed beside the
# timings). Times are medians of short repeated runs, so they are noisy at the level of ten percent
# or so, more when the machine is busy. The page asserts what holds on any machine (the numbers
# agree; loops are more than ten times slower than im2col), never a precise time, and the text says
# what to look for rather than quoting numbers: read the printed lines for this run's values.
# Boxes marked **For contributors** hold machine-specific details a learner can skip.

# %%
import os
import resource                                     # Unix: page faults (fresh memory) per step
import subprocess
import sys
import time
from pathlib import Path
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numba
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import tinycnn as tc
from tinycnn import kernels
from tinycnn.fast import PASSES
from tinycnn.fast.passes import lanes

from helpers import FAST, assert_agree, quote, rounding_bound, save_figure

try:
    import torch
except ImportError:            # the tutorial runs without PyTorch; only its rung is skipped
    torch = None

rng = np.random.default_rng(6)
print("mode:", "fast" if FAST else "full")
blas = next((p for p in threadpool_info() if p["user_api"] == "blas"), {})
print(f"cores: {os.cpu_count()}, Numba threads: {numba.config.NUMBA_NUM_THREADS}, "
      f"BLAS: {blas.get('internal_api')} {blas.get('version')} (kernels for {blas.get('architecture')}), "
      f"PyTorch {torch.__version__ if torch else 'not installed'}")
print("load average (1, 5, 15 min) at the start: %.1f %.1f %.1f" % os.getloadavg())
# The winograd pass is off by default (its file says why: it measured slower here), so the plans
# leave it out; the page follows the passes that run.
RUN = [p for p in PASSES if p != "winograd"]
print("the executor's passes, in the order they run:", ", ".join(RUN))

# %% [markdown]
# Two small tools. `threads(n)` sets how many threads every pool may use: NumPy's BLAS (through
# threadpoolctl), Numba's and PyTorch's. `median_time` runs a function once untimed (which compiles
# Numba code and warms the caches), then `reps` times, and returns the median, which ignores the runs
# another program happened to interrupt. Its default clock is the CPU time of this process
# (`time.process_time`): for work on one thread that is what the computation costs, and it does not
# count the time this program sat waiting while another one used the core. For two threads it would
# be the wrong clock (two threads can only save *wall* time), so section 3's two-thread timings use
# the wall clock.

# %%
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
    """Median time of fn() in seconds by ``clock`` (CPU time by default), over reps calls after one
    untimed call."""
    fn()
    times = []
    for _ in range(reps):
        start = clock()
        fn()
        times.append(clock() - start)
    return float(np.median(times))


REPS = 3 if FAST else 15                # timed repeats of a fast piece of work

# %% [markdown]
# ## 1. The speed ladder for one convolution
#
# The layer is the second convolution of the seed article's CNN: 32 input channels, 64 filters of
# size 3 × 3, on 15 × 15 feature maps, no padding, so the output is 13 × 13. Each output value is a
# sum of C · KH · KW = 32 · 3 · 3 = 288 products, a *multiply-add* each (two floating-point
# operations, FLOPs, which is how matrix-multiply speeds are quoted). To compare rungs that run on
# different amounts of work, the ladder reports **nanoseconds per multiply-add**.
#
# As a yardstick, first the rate of NumPy's matrix multiply on its favourite shape, a large square
# product on one thread: no im2col convolution can do its arithmetic faster than the multiply it
# calls.

# %%
N = 2 if FAST else 32                   # images in the batch
C, CO, HW, K = 32, 64, 15, 3            # in channels, out channels, input height = width, kernel size
OHW = HW - K + 1                        # output height = width: (15 - 3) // 1 + 1 = 13
LOOP_N = 1 if FAST else 2               # the loops take seconds per image batch: time them on fewer images

x = rng.standard_normal((N, C, HW, HW), dtype=np.float32)                          # (N, C, H, W)
layer = tc.Conv2D(C, CO, K, rng=np.random.default_rng(0))                          # weight (CO, C, K, K)
w, b = layer.weight.data, layer.bias.data


def macs(n):
    """Multiply-adds of this layer's forward pass on n images."""
    return n * CO * OHW * OHW * C * K * K


SQ = 512 if FAST else 1024
A = rng.standard_normal((SQ, SQ), dtype=np.float32)
P = np.empty((SQ, SQ), dtype=np.float32)
with threads(1):
    peak = 2 * SQ ** 3 / median_time(lambda: np.matmul(A, A, out=P), REPS) / 1e9   # GFLOP/s
print(f"input {x.shape}, weights {w.shape}, output ({N}, {CO}, {OHW}, {OHW}): {macs(N):,} multiply-adds")
print(f"NumPy's square {SQ}x{SQ} float32 product on 1 thread: {peak:.0f} GFLOP/s "
      f"= {2 / peak:.4f} ns per multiply-add")

# %% [markdown]
# **Rung 1: loops.** The definition as directly as NumPy allows: for every image, filter and output
# position, the 32 × 3 × 3 window times the filter, summed. The loops run in Python, the 288 products
# of one window in NumPy.

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
    y_loops = conv_loops(x[:LOOP_N], w, b)
    t_loops = median_time(lambda: conv_loops(x[:LOOP_N], w, b), 1)
ns_loops = t_loops / macs(LOOP_N) * 1e9
print(f"loops on {LOOP_N} image(s): {t_loops * 1e3:.0f} ms, {t_loops / (LOOP_N * CO * OHW * OHW) * 1e6:.2f} µs "
      f"per window, {ns_loops:.1f} ns per multiply-add")

# %% [markdown]
# A core does the 288 multiply-adds of a window in well under a tenth of a microsecond. What costs
# microseconds is everything around them: Python builds a slice, NumPy makes a view, allocates the
# product `window * w[f]`, sums it, and Python stores the result. That is **interpreter overhead**, a
# fixed cost per call, paid once per window. The cure is few calls that each do a lot of work.
#
# **Rung 2: the plain layer.** `Conv2D.forward` (tutorial 1 quoted it) copies every window into one
# column of a matrix with the compiled kernel `kernels.im2col`, then makes one matrix multiply of the
# (64, 288) weights by that (288, N · 169) matrix, adds the bias and reorders the result into
# (N, O, OH, OW). Calling a layer directly always runs its own code.
#
# Is it the same convolution as the loops? The two add the same 289 terms (288 products and the
# bias) in different orders, so in float32 they may differ by rounding. How much is allowed is
# derived, not tuned: a float sum of n terms, in any order, is within γₙ · S of the exact sum
# (γₙ ≈ n · u, u = 2⁻²⁴ ≈ 6.0e-8 the float32 unit roundoff, S the sum of the terms' absolute values),
# so two orders are at most 2 γₙ S apart (`helpers.rounding_bound`). S is the same convolution run
# on |x|, |w| and |b| in float64.

# %%
def abs_sum(x, w, b):
    """S: the convolution of |x| with |w| plus |b|, in float64 (N, O, OH, OW)."""
    s = tc.Conv2D(C, CO, K, dtype=np.float64, rng=np.random.default_rng(0))
    s.weight.data[...], s.bias.data[...] = np.abs(w), np.abs(b)
    return s.forward(np.abs(x).astype(np.float64))


bound = rounding_bound(C * K * K + 1, abs_sum(x, w, b), np.float32)    # (N, O, OH, OW)
with threads(1):
    y_plain = layer.forward(x)
    t_plain = median_time(lambda: layer.forward(x), REPS)
assert_agree("rung 2 (plain layer) vs rung 1 (loops)", y_plain[:LOOP_N], y_loops, bound[:LOOP_N])
ns_plain = t_plain / macs(N) * 1e9
print(f"plain layer: {t_plain * 1e3:.2f} ms, {ns_plain:.3f} ns per multiply-add, "
      f"{ns_loops / ns_plain:.0f}x faster than the loops")
assert ns_loops > 10 * ns_plain, "im2col should be more than an order of magnitude faster than the loops"

# %% [markdown]
# **Rung 3: the executor.** `tc.fast.compile([layer])` compiles a plan for this one layer with every
# pass; section 3 takes those passes apart. Inside a network the layer before hands its output over
# in the executor's *channel-major* memory layout (section 3.2 explains it), so the plan is timed on
# such an input: the same values as `x`, laid out differently in memory.
#
# **Rung 4: PyTorch**, on the same data and one thread, as a yardstick (skipped if it is not
# installed). Both are checked with the same bound.

# %%
plan1 = tc.fast.compile([layer])                        # the executor's plan for this one layer
x_cm = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)   # (N, C, H, W) view
assert np.array_equal(x_cm, x) and not x_cm.flags.c_contiguous                 # same values, other memory
with threads(1):
    y_fast = plan1.forward(x_cm)
    t_fast = median_time(lambda: plan1.forward(x_cm), REPS)
assert_agree("rung 3 (executor) vs rung 2 (plain layer)", y_fast, y_plain, bound)
names, ns = ["1 loops", "2 plain layer", "3 executor"], [ns_loops, ns_plain, t_fast / macs(N) * 1e9]
if torch:
    xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
    with threads(1), torch.no_grad():
        y_torch = torch.nn.functional.conv2d(xt, wt, bt).numpy()
        t_torch = median_time(lambda: torch.nn.functional.conv2d(xt, wt, bt), REPS)
    assert_agree("rung 4 (PyTorch) vs rung 3 (executor)", y_torch, y_fast, bound)
    names.append("4 PyTorch")
    ns.append(t_torch / macs(N) * 1e9)
print(f"{'rung':16s} {'ns per multiply-add':>20s} {'GFLOP/s':>8s} {'of the square product':>22s}")
for name, t in zip(names, ns):
    print(f"{name:16s} {t:20.4f} {2 / t:8.1f} {2 / t / peak:22.0%}")
print("load average now: %.1f %.1f %.1f" % os.getloadavg())

fig, ax = plt.subplots(figsize=(7.5, 4))
colors = ["#b0b0b0", "#6baed6", "#08519c", "#e6550d"][:len(names)]
ax.bar([n.replace(" ", "\n", 1) for n in names], ns, color=colors)
ax.axhline(2 / peak, color="k", linestyle="--", label=f"NumPy's square product ({peak:.0f} GFLOP/s)")
ax.set_yscale("log")
ax.set_ylabel("nanoseconds per multiply-add (log scale)")
ax.set_title(f"Conv2D {C}->{CO}, 3x3, on {HW}x{HW}, 1 thread (CPU time, median)")
for i, t in enumerate(ns):
    ax.text(i, t * 1.15, f"{t:.3g} ns", ha="center", fontsize=9)
ax.legend(loc="upper right", fontsize=9)
ax.set_ylim(top=max(ns) * 5)
fig.tight_layout()
save_figure(fig, "06_ladder_times", "Nanoseconds per multiply-add for each rung of the ladder, log scale")

# %% [markdown]
# Read the picture from left to right. From loops to the plain layer is two to three orders of
# magnitude, all of it interpreter overhead: the loops made one NumPy call per window (N · 64 · 169 of
# them), the layer makes about a dozen calls in all. After that the arithmetic runs inside one BLAS
# matrix multiply, and what separates each rung from the dashed line is the work *around* the
# multiply: the im2col copy, the reordering of the output, fresh memory. That work is what the
# executor's passes remove, and a single layer's forward is the place where it counts least: its
# savings add up over a whole network and its backward pass (section 3). PyTorch's convolution runs
# its own kernels; this page does not take apart how it gets its rate.
#
# ## 2. What the executor takes, and the graph it lowers it to
#
# The executor takes a **model**: a `Sequential`, or just a list of layers. `model(x)` asks the
# model for its plan (`model.plan()`, compiled on the first call and kept while the layers stay the
# same) and runs it. `tc.fast.compile(model)` makes a plan directly; `tc.fast.compile(model,
# plain=True)` makes the *plain* plan, which runs every layer on its own code: the reference the
# fast plan is tested against.

# %%
small = tc.Sequential(tc.Conv2D(3, 8, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),      # 3x16x16 -> 8x14x14 -> 8x7x7
                      tc.Conv2D(8, 16, 3, padding=1, rng=rng), tc.ReLU(),            # -> 16x7x7
                      tc.Flatten(), tc.Dense(16 * 7 * 7, 10, rng=rng))
xs = rng.standard_normal((4, 3, 16, 16), dtype=np.float32)
logits = small(xs)                                     # runs small.plan()
assert small.plan() is small.plan()                    # compiled once, kept
print(tc.fast.compile(small, plain=True).describe())
print()
print(small.plan().describe())
print()
print("op per node:", ", ".join(f"v{n.output}: {type(n.op).__name__}" for n in small.plan().graph.nodes))

# %% [markdown]
# How to read a plan. `v0` is the network's input; every line is one **node**: it reads the values
# in brackets and writes a new value, and the last line says which value the network returns. The
# plain plan has one node per layer, in order. The fast plan is the same program after the passes:
# the notes in square brackets say what each pass did to a node, and one pair of nodes has swapped
# places (the max-pool now runs before the ReLU, section 3.1 says why and why that gives the same
# bits). Each node runs an **op**: a fast op for the layer kinds that have one (`ConvOp`, `ReLUOp`, ...),
# or `PlainOp`, which calls the layer's own `forward` and `backward`. A layer you write yourself
# gets a `PlainOp` and runs correctly, at its own speed:

# %%
class Scale(tc.Layer):
    """y = 2x: a layer the executor has never seen."""

    def forward(self, x):
        return 2 * np.asarray(x)

    def backward(self, g):
        return 2 * np.asarray(g)

    def __repr__(self):
        return "Scale()"


mine = tc.fast.compile([tc.Conv2D(3, 4, 3, rng=rng), Scale(), tc.ReLU()])
print(mine.describe())
print("ops:", [type(n.op).__name__ for n in mine.graph.nodes])

# %% [markdown]
# The executor is built for **graphs**, not only chains. A residual block (tutorial 7) computes
# y = post(block(x) + x): its input is read twice, by the block and by the addition. Here is a small
# residual network; the plain plan keeps the `Residual` as one node that runs its own code, and the
# fast plan *lowers* it into its parts.

# %%
def residual_net(dtype, rng, c=8):
    """3x16x16 -> stem conv -> one residual block (two convs) -> pool -> dense: 10 logits."""
    def conv():
        return tc.Conv2D(c, c, 3, padding=1, bias=False, dtype=dtype, rng=rng)   # no bias: a batch norm follows
    block = tc.Sequential(conv(), tc.BatchNorm2D(c, dtype=dtype), tc.ReLU(), conv(), tc.BatchNorm2D(c, dtype=dtype))
    return tc.Sequential(tc.Conv2D(3, c, 3, padding=1, bias=False, dtype=dtype, rng=rng),
                         tc.BatchNorm2D(c, dtype=dtype), tc.ReLU(),
                         tc.Residual(block, post=tc.ReLU()),                 # y = relu(block(x) + x)
                         tc.MaxPool2D(2), tc.Flatten(), tc.Dense(c * 8 * 8, 10, dtype=dtype, rng=rng))


res = residual_net(np.float32, np.random.default_rng(1))
res_plan = res.plan()                                  # what res(x) runs
print(tc.fast.compile(res, plain=True).describe())
print()
print(res_plan.describe())
g = res_plan.graph
forks = [v for v in range(g.values) if len(g.consumers(v)) > 1]
print()
for v in forks:
    print(f"v{v} is a fork: read by the nodes writing", ", ".join(f"v{g.nodes[i].output}" for i in g.consumers(v)))

# %% [markdown]
# Three things to see. The residual block became an `add` node reading two values: the block's output
# and `v2`, the block's input. `v2` is a **fork**, a value read by two nodes; in the backward pass its
# gradient is the *sum* of the gradients its two readers send back (one line of `Plan.backward`, the
# rule tutorial 7 derives for residual blocks). And some value numbers are missing: the fusion pass
# removed the ReLU nodes that followed a batch norm (the batch norm's op now applies the ReLU as it
# writes its output: "ReLU fused"), so nothing writes `v3` or `v6` any more.
#
# The backward pass walks the nodes in reverse, and this is all it takes to run a graph rather than a
# chain: each node gets the gradient its output received, and where a value has several readers,
# their gradients add up (the line marked "fork").

# %% tags=["same-output"]
from tinycnn.fast import plan as plan_module

quote(plan_module._run_backward)

# %% [markdown]
# (`steps` is the list of nodes to run backward, and whether each must compute its input gradient:
# the prune pass of section 3.3 decides it.)
#
# ## 3. The passes, one at a time
#
# A pass is a small function that rewrites the graph or sets a field of its ops' configuration
# (`OpConfig`: one field per trick, all off by default). `tc.fast.compile(model, passes=...)` runs
# the passes you list, so compiling with a growing list shows what each one adds. The network is the
# seed article's CNN (3 → 32 → 64 → 128 channels, each a 3 × 3 convolution, ReLU and 2 × 2 max-pool,
# then a dense layer) at batch 64. First the plans, and the configuration of the first node's op
# after each pass; then, below, a training step timed after each.

# %%
STEP_BATCH = 16 if FAST else 64
W1, W2, W3 = 32, 64, 128


def seed_cnn(dtype, rng):
    return tc.Sequential(
        tc.Conv2D(3, W1, 3, dtype=dtype, rng=rng), tc.ReLU(), tc.MaxPool2D(2),     # 32 -> 30 -> 15
        tc.Conv2D(W1, W2, 3, dtype=dtype, rng=rng), tc.ReLU(), tc.MaxPool2D(2),    # 15 -> 13 -> 6
        tc.Conv2D(W2, W3, 3, dtype=dtype, rng=rng), tc.ReLU(), tc.MaxPool2D(2),    # 6 -> 4 -> 2
        tc.Flatten(), tc.Dense(W3 * 2 * 2, 10, dtype=dtype, rng=rng))


cnn = seed_cnn(np.float32, np.random.default_rng(16))
shown = None
for k in range(len(RUN) + 1):
    p = tc.fast.compile(cnn, passes=RUN[:k])
    text = p.describe().splitlines()
    print(f"--- passes={tuple(RUN[:k])}")
    if shown is None:
        print("\n".join(text[1:]))
    else:
        changed = [line for line in text[1:] if line not in shown]
        print("\n".join(changed) if changed else "(the program prints the same)")
    print("first node's op:", p.graph.nodes[0].op.cfg)
    shown = text[1:]

# %% [markdown]
# (After the first plan, only the lines that changed are printed.) `fusion`, `blocks`, `layout` and
# `prune` leave notes in the program; `memory` and `threads` change only the ops' configuration
# (`alloc`, `split_products`), which is why the last line of each step is printed too. `lanes` changes
# neither: it is a rule applied at every call, because whether a batch is worth cutting depends on
# the batch (section 3.6). Each pass's file in `tinycnn/fast/passes/` starts with a docstring that
# says what it changes and where it was measured; the smallest passes are a few lines:

# %% tags=["same-output"]
from tinycnn.fast.passes import layout as layout_pass
from tinycnn.fast.passes import memory as memory_pass

quote(layout_pass.apply)
quote(memory_pass.apply)

# %% [markdown]
# Now the time. The cell below builds one plan per step of the list (and the plain plan) for the same
# network and weights, and times a training step's forward and backward through each: forward, the
# loss, and `backward(..., input_grad=False)`, what `fit` calls (the optimizer's update is left out:
# it is the same for all). The first seven run on one thread. `threads` and `lanes` are about two
# threads, so the plan with every pass up to `memory` is timed on two threads as well, as the
# baseline they improve on. The plans take turns, round after round, so that a busy moment of the
# machine hits all of them; each measurement starts with a short pause and a few untimed steps
# (an idle core needs a moment to come back to full speed), and times the wall clock. Besides the
# time, it counts the **page faults** per step: how often the operating system had to hand this
# process a fresh page of memory.

# %%
STEP_REPS, ROUNDS = (2, 1) if FAST else (7, 2)
xb = np.random.default_rng(17).standard_normal((STEP_BATCH, 3, 32, 32), dtype=np.float32)
yb = np.random.default_rng(18).integers(0, 10, STEP_BATCH)
ce = tc.SoftmaxCrossEntropy()


def up_to(name):
    """The passes that run, from the first up to and including ``name``."""
    return tuple(RUN[:RUN.index(name) + 1])


ONE_THREAD = RUN[:RUN.index("memory") + 1]               # fusion ... memory, timed on one thread
STAGES = [("layers' own code", dict(plain=True), 1), ("no passes", dict(passes=()), 1)]
STAGES += [(f"+ {name}", dict(passes=up_to(name)), 1) for name in ONE_THREAD]
STAGES += [(f"+ {name}", dict(passes=up_to(name)), 2) for name in ("memory", "threads", "lanes")]
N_ONE = sum(nt == 1 for _, _, nt in STAGES)
plans = [tc.fast.compile(cnn, **kw) for _, kw, _ in STAGES]


def train_step(plan):
    ce(plan.forward(xb), yb)
    plan.backward(ce.backward(), input_grad=False)


PAUSE = 0.05 if FAST else 0.2                            # seconds of pause, then of untimed steps


def measure(plan, n_threads):
    """STEP_REPS wall-clock step times and the page faults per step, after a pause and warm-up."""
    with threads(n_threads):
        time.sleep(PAUSE)
        start = time.perf_counter()
        while time.perf_counter() - start < PAUSE:
            train_step(plan)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        times = []
        for _ in range(STEP_REPS):
            t0 = time.perf_counter()
            train_step(plan)
            times.append(time.perf_counter() - t0)
        return times, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / STEP_REPS


step_times = [[] for _ in STAGES]
step_faults = [[] for _ in STAGES]
for r in range(ROUNDS):
    for i in list(range(len(STAGES)))[r:] + list(range(len(STAGES)))[:r]:   # each round starts elsewhere
        t, f = measure(plans[i], STAGES[i][2])
        step_times[i] += t
        step_faults[i].append(f)
step_ms = [1e3 * float(np.median(t)) for t in step_times]
faults = [float(np.median(f)) for f in step_faults]
with threads(2):
    train_step(plans[-1])
    n_lanes = len(plans[-1].last.slices)
print(f"seed CNN, batch {STEP_BATCH}, forward + backward, median of {ROUNDS * STEP_REPS} steps "
      f"(load average {os.getloadavg()[0]:.1f}); with every pass, 2 threads cut the batch into {n_lanes} lanes")
print(f"{'plan':18s} {'threads':>7s} {'ms per step':>12s} {'vs the one before':>18s} {'page faults per step':>21s}")
for i, ((name, _, nt), t, f) in enumerate(zip(STAGES, step_ms, faults)):
    before = "" if i == 0 or STAGES[i - 1][2] != nt else f"{step_ms[i - 1] / t:.2f}x"
    print(f"{name:18s} {nt:7d} {t:12.2f} {before:>18s} {f:21.0f}")
print(f"all passes on 2 threads against the layers' own code on 1: {step_ms[0] / step_ms[-1]:.1f}x")

fig, ax = plt.subplots(figsize=(9, 4.2))
colors = ["#b0b0b0"] + ["#6baed6"] * (N_ONE - 1) + ["#08519c"] * (len(STAGES) - N_ONE)
ax.bar(range(len(STAGES)), step_ms, color=colors)
ax.set_xticks(range(len(STAGES)), [f"{name}\n({nt} thr.)" for name, _, nt in STAGES], fontsize=8)
for i, t in enumerate(step_ms):
    ax.text(i, t * 1.02, f"{t:.1f}", ha="center", fontsize=8)
ax.axvline(N_ONE - 0.5, color="k", linewidth=0.8)
ax.set_ylabel("ms per training step (forward + backward)")
ax.set_title(f"Seed CNN, batch {STEP_BATCH}: each pass added in turn (wall clock, median)")
fig.tight_layout()
save_figure(fig, "06_passes", "Time of a training step as each pass is added, one thread then two threads")

# %% [markdown]
# How much each pass is worth depends on the network, the batch, the machine and its load; the
# sections below take the passes in turn, say what to look for in the table and the picture, and
# measure the reason for each on its own. Expect some passes to gain less than the noise of a shared
# machine on this network: a pass that removes a full pass over memory saves a fraction of a
# millisecond per layer, and the step's matrix multiplies do not change at all. And the "no passes"
# plan need not beat the layers' own code: with every pass off, its ops convert each input into their
# own layout, copy each output back into C order and take fresh memory at every call; the speed comes
# from the passes.
#
# ### 3.1 Fusion: fewer passes over memory
#
# Three rewrites (the pass's docstring, below, has the argument for each). **The bias inside the
# multiply**: the im2col matrix gets one more row of ones and the weights the bias as one more
# column, so `[W | b] @ [cols; 1]` adds the bias inside the product, and its gradient is the last row
# of the weight-gradient product: no pass over the output to add it, none over the gradient to sum
# it. **BatchNorm2D then ReLU** as one op (the residual network above). **ReLU then MaxPool2D** runs
# as MaxPool2D then ReLU: the ReLU then works on the pooled map, four times smaller, and the outputs
# and gradients are the same bits.

# %% tags=["same-output"]
from tinycnn.fast.passes import fusion

print("# tinycnn/fast/passes/fusion.py (docstring)")
print(fusion.__doc__.strip())

# %% [markdown]
# The reason, measured: the same ReLU op (with every pass) on the first convolution's output of the
# seed CNN, (64, 32, 30, 30), and on the pooled map it gets after the swap, (64, 32, 15, 15); and the
# first convolution's op forward and backward with the bias added as a separate pass and inside the
# product.

# %%
conv1 = cnn[0]
a1 = np.random.default_rng(2).standard_normal((STEP_BATCH, W1, 30, 30), dtype=np.float32)
relu_plan = tc.fast.compile([tc.ReLU()])


def fwd_bwd(plan, x, g):
    plan.forward(x)
    plan.backward(g, input_grad=False)


a1_pooled = np.ascontiguousarray(a1[:, :, ::2, ::2])                  # (N, 32, 15, 15)
g1 = np.ones((STEP_BATCH, W1, 30, 30), np.float32)
with threads(1):
    t_relu_full = median_time(lambda: relu_plan.forward(a1), REPS)
    t_relu_pooled = median_time(lambda: relu_plan.forward(a1_pooled), REPS)
    no_fusion = tc.fast.compile([conv1], passes=())
    with_fusion = tc.fast.compile([conv1], passes=("fusion",))
    t_bias_pass = median_time(lambda: fwd_bwd(no_fusion, xb, g1), REPS)
    t_bias_gemm = median_time(lambda: fwd_bwd(with_fusion, xb, g1), REPS)
print(f"ReLU op on {a1.shape}: {t_relu_full * 1e3:.3f} ms; on the pooled {a1_pooled.shape}: "
      f"{t_relu_pooled * 1e3:.3f} ms ({t_relu_full / t_relu_pooled:.1f}x less)")
print(f"first conv, forward + backward: bias as its own pass {t_bias_pass * 1e3:.2f} ms, "
      f"inside the product {t_bias_gemm * 1e3:.2f} ms")

# %% [markdown]
# The ReLU is a pass over memory with no arithmetic to speak of: its time goes with the bytes it
# touches, so on a map four times smaller it should take at most about a quarter of the time (less
# still when the smaller map fits in the processor's cache). The bias is a different story: its add
# is one pass over the 7 MB output, next to a matrix multiply that takes far longer, and the extra
# row makes that multiply one row larger, so the two lines above can come out within noise of each
# other or in either order. The benchmark suite found the same for the product itself; what the
# fusion saves is the two passes that no longer exist (benchmarks/PERFORMANCE.md, 'Bias inside the
# matrix multiply').
#
# And the swap changes no bit, forward or backward; here on the same map, with the plain layers in
# both orders (the fusion pass's docstring above has the argument; the tests check it on inputs full
# of ties, zeros, NaN and -inf):

# %%
gp = np.random.default_rng(8).standard_normal(a1_pooled.shape).astype(np.float32)   # dL/d(pooled)
relu_a, pool_a = tc.ReLU(), tc.MaxPool2D(2)                                         # ReLU, then pool
y_a = pool_a.forward(relu_a.forward(a1))
dx_a = relu_a.backward(pool_a.backward(gp))
pool_b, relu_b = tc.MaxPool2D(2), tc.ReLU()                                         # pool, then ReLU
y_b = relu_b.forward(pool_b.forward(a1))
dx_b = pool_b.backward(relu_b.backward(gp))
print("outputs bitwise equal:", np.array_equal(y_a, y_b), "| input gradients bitwise equal:",
      np.array_equal(dx_a, dx_b))
assert np.array_equal(y_a, y_b) and np.array_equal(dx_a, dx_b)
#
# ### 3.2 Layout: channel-major activations
#
# Every 4-D activation is an (N, C, H, W) array to you. The plain layers keep it *C-ordered*: in
# memory, image 0's channel 0 row by row, then its channel 1, ... Inside a plan, Conv2D and BatchNorm2D
# hand on **channel-major** activations instead: the same (N, C, H, W) array, but a *view* of memory
# laid out as (C, H, W, N), images fastest. Two reasons. Conv2D's im2col writes its columns with the
# images fastest, so the product `W @ cols` comes out as (O, OH, OW, N) in memory: that is already the
# next layer's input, where the plain layer must copy the product into (N, O, OH, OW) order (and
# its gradient back). And with images fastest, every value im2col copies belongs to a run of N
# contiguous numbers, a long inner loop that vectorises, where C order gives rows of 13 to 30 numbers
# with a bounds test each. The strides say how each layout lies in memory:

# %%
y_cm = tc.fast.compile([conv1]).forward(xb)
print("executor's output:", y_cm.shape, "strides (bytes per step along N, C, H, W):", y_cm.strides,
      "| C-contiguous:", y_cm.flags.c_contiguous)
y_c = conv1.forward(xb)
print("plain layer's:    ", y_c.shape, "strides:", y_c.strides, "| C-contiguous:", y_c.flags.c_contiguous)
assert np.array_equal(y_cm.shape, y_c.shape) and y_cm.strides[0] == 4      # images 4 bytes apart

a2 = np.random.default_rng(3).standard_normal((STEP_BATCH, W1, 15, 15), dtype=np.float32)   # conv2's input
a2_cm = np.ascontiguousarray(a2.transpose(1, 2, 3, 0))                                      # (C, H, W, N)
cols_cm = np.empty((W1 * 9, 13 * 13 * STEP_BATCH), np.float32)
out2 = np.random.default_rng(4).standard_normal((W2, 13 * 13 * STEP_BATCH), dtype=np.float32)
with threads(1):
    t_im2col_c = median_time(lambda: kernels.im2col(a2, 3, 3, 1, 1, 0, 0), REPS)
    t_im2col_cm = median_time(lambda: kernels.im2col_cm(a2_cm, 3, 3, 1, 1, 0, 0, cols_cm), REPS)
    t_reorder = median_time(lambda: np.ascontiguousarray(out2.reshape(W2, 13, 13, STEP_BATCH)
                                                         .transpose(3, 0, 1, 2)), REPS)
print(f"second conv's im2col: C-ordered input {t_im2col_c * 1e3:.3f} ms, channel-major {t_im2col_cm * 1e3:.3f} ms")
print(f"the copy of its product into (N, O, OH, OW) order, which the channel-major layout skips: "
      f"{t_reorder * 1e3:.3f} ms")

# %% [markdown]
# Reading the strides: the executor's output has a stride of 4 bytes along N, so neighbouring images
# are neighbours in memory; the plain layer's has a stride of 4 bytes along W. Values never depend on
# the layout, only speed does: every op, and every plain layer, accepts any layout (a plain layer
# makes its own C-ordered copy where it needs one).
#
# ### 3.3 Prune: no gradient nobody reads
#
# Training needs the gradients of the parameters, never the gradient of the input images. The prune
# pass works out which values *require* a gradient, and in backward it asks a node for its input
# gradient only if one of its inputs requires one (and does not run a node backward at all when
# nothing in or before it has parameters). For the seed CNN that removes one matrix multiply and one
# col2im of the first convolution: the note "no input gradient in training" above. Measured on that
# layer's op:

# %%
conv1_plan = tc.fast.compile([conv1])
with threads(1):
    conv1_plan.forward(xb)
    g_y1 = np.ones((STEP_BATCH, W1, 30, 30), np.float32)
    t_with_dx = median_time(lambda: conv1_plan.backward(g_y1, input_grad=True), REPS)
    t_without_dx = median_time(lambda: conv1_plan.backward(g_y1, input_grad=False), REPS)
print(f"first conv backward: with the input gradient {t_with_dx * 1e3:.2f} ms, without {t_without_dx * 1e3:.2f} ms")

# %% [markdown]
# ### 3.4 Memory: recycled arrays, no fresh pages
#
# A training step of this network at batch 64 makes tens of megabytes of activations, masks and
# gradients, many of them arrays of several megabytes. The C library hands blocks that large to the
# operating system when they are freed and asks for them again on the next step; the operating
# system then zero-fills every fresh 4 KB page the first time it is touched: that is the **page
# faults** column of the table. The memory pass makes every op take its outputs and workspaces from
# one allocator (`tinycnn/fast/memory.py`) that keeps arrays from one step to the next and hands one
# out again only when *nobody* holds it any more, which it checks with the array's reference count.
# So an output you keep is never overwritten:

# %%
conv2_plan = tc.fast.compile([cnn[3]])                   # the second convolution, every pass
x2 = a2_cm.transpose(3, 0, 1, 2)                         # channel-major input (N, C, H, W) view


def address(a):
    return a.__array_interface__["data"][0]              # where its first element lives in memory


kept = conv2_plan.forward(x2)
again = conv2_plan.forward(x2)
print("a kept output and the next one share memory:", np.shares_memory(kept, again))
old = address(again)
del again                                                # nobody holds it now
reused = address(conv2_plan.forward(x2)) == old
print("after del, the next output reuses its memory:", reused)
assert reused and not np.shares_memory(kept, conv2_plan.forward(x2))

# %% [markdown]
# How many fresh pages a step needs *without* the pass depends on the C library's state, which
# changes over a process's life: glibc raises its own thresholds as it sees large blocks come and go,
# so in a process that has already run a lot, like this page's, the table above may show few page
# faults even without the pass. A fresh process shows the effect as a training run meets it: below,
# one fresh Python per plan (every pass up to `prune`, then up to `memory`) runs the seed CNN for a
# few warm-up steps and counts the page faults and the operating system's time (*system* time: the
# zero-filling of fresh pages) per step after them.

# %%
FRESH_PROCESS = f"""
import resource, sys
import numba, numpy as np, tinycnn as tc
from threadpoolctl import threadpool_limits
numba.set_num_threads(1)
rng = np.random.default_rng(16)
cnn = tc.Sequential(tc.Conv2D(3, {W1}, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2), tc.Conv2D({W1}, {W2}, 3, rng=rng),
                    tc.ReLU(), tc.MaxPool2D(2), tc.Conv2D({W2}, {W3}, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
                    tc.Flatten(), tc.Dense({W3 * 4}, 10, rng=rng))
plan = tc.fast.compile(cnn, passes=tuple(sys.argv[1:]))
x, y = rng.standard_normal(({STEP_BATCH}, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, {STEP_BATCH})
ce = tc.SoftmaxCrossEntropy()
with threadpool_limits(1, user_api="blas"):
    for step in range(8):
        if step == 3:
            before = resource.getrusage(resource.RUSAGE_SELF)
        ce(plan.forward(x), y)
        plan.backward(ce.backward(), input_grad=False)
after = resource.getrusage(resource.RUSAGE_SELF)
print((after.ru_minflt - before.ru_minflt) / 5, (after.ru_stime - before.ru_stime) / 5)
"""
repo = str(Path(tc.__file__).resolve().parents[1])              # this checkout's tinycnn, in the child too
for passes in (PASSES[:3], PASSES[:4]):
    out = subprocess.run([sys.executable, "-c", FRESH_PROCESS, *passes], capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYTHONPATH=repo)).stdout.split()
    print(f"fresh process, passes up to {passes[-1]:6s}: {float(out[0]):6.0f} page faults and "
          f"{float(out[1]) * 1e3:5.1f} ms of system time per step")

# %% [markdown]
# With the allocator a step asks the operating system for next to no memory; without it, every step
# pays for fresh pages again. How much that costs in time depends on the machine (the benchmark suite
# measured several milliseconds per step of this network: benchmarks/PERFORMANCE.md, 'Recycled output
# arrays and memory planning').
#
# ### 3.5 Threads: split the products, keep small kernels serial
#
# With two threads there are two ways to use them, and the last three rows of the table compare
# them. Without the threads pass, every matrix multiply is one NumPy call that BLAS splits over its
# own threads, and every Numba kernel starts Numba's threads. With it, products are split over
# tinycnn's threads with BLAS on one thread (after a multi-threaded product, OpenBLAS's idle worker
# keeps spinning on its core for a while, and the Numba kernel that comes next finds that core taken),
# and kernels on less than 2¹⁸ elements run serially, where starting threads costs more than it
# gains. In the table, the "+ memory" row on two threads is the step without this pass, and it can
# be much slower than on one thread: BLAS's threads and Numba's take turns stealing each other's
# cores, more so when other programs want them too. The threshold for small kernels, measured on
# the ReLU kernel: its serial twin and its two-thread version on the third convolution's output of
# the seed CNN at batch 64 (small) and on the first one's (large).

# %%
from tinycnn.kernels import elementwise


def relu_kernel_times(n):
    """Wall-clock medians of the ReLU kernel on n float32 numbers: serial twin, then two threads."""
    v = np.random.default_rng(9).standard_normal(n, dtype=np.float32)
    y, positive = np.empty_like(v), np.empty(n, np.bool_)
    with threads(2):
        serial = median_time(lambda: elementwise.relu_forward.serial(v, y, positive), 4 * REPS, time.perf_counter)
        parallel = median_time(lambda: elementwise.relu_forward(v, y, positive), 4 * REPS, time.perf_counter)
    return serial, parallel


for what, n in [("third conv's output", 64 * W3 * 4 * 4), ("first conv's output", 64 * W1 * 30 * 30)]:
    serial, parallel = relu_kernel_times(n)
    print(f"ReLU on the {what} ({n:,} numbers): serial {serial * 1e6:7.1f} µs, 2 threads "
          f"{parallel * 1e6:7.1f} µs ({serial / parallel:.2f}x)")

# %% [markdown]
# Starting the second thread and waiting for it costs microseconds whatever the size; on the small
# map that is a large share of the work, on the large one a small share. (On a busy machine the
# second thread may not get a core at once, and two threads can lose on both.)
#
# ### 3.6 Lanes: cut the batch, not the kernels
#
# Splitting every product and kernel means the two threads meet at the end of each: about twenty
# meetings per step of this network, each a wake-up and a wait for the slower half. **Lanes** cut the
# batch instead: with two threads, a batch of 64 becomes two *lanes* of 32, and each thread takes its
# lane through the whole network, first node to last, with every kernel serial. The lanes meet twice
# per step: when forward joins their outputs and when backward adds up their parameter gradients.
# That is allowed because image i's numbers never meet image j's in these layers (every op is
# *per-sample*; batch norm's statistics, which do mix images, are gathered across the lanes). A lane
# must carry enough work to pay for the meetings:

# %%
print(f"a lane needs at least {lanes.MIN_LANE_BATCH} images and {lanes.MIN_LANE_MACS:,} forward multiply-adds")
print(f"the last plan's last forward: rows {[(s.start, s.stop) for s in plans[-1].last.slices]} of the batch")
print(f"2 threads, with the threads pass: {step_ms[-2]:.2f} ms per step; with lanes: {step_ms[-1]:.2f} ms "
      f"({step_ms[-2] / step_ms[-1]:.2f}x); the best one-thread plan: {min(step_ms[1:N_ONE]):.2f} ms")

# %% [markdown]
# On a quiet machine two lanes come close to halving the one-thread step, and beat the split kernels
# (benchmarks/PERFORMANCE.md, 'Batch lanes', measured both). On a busy one (look at the load average
# printed with the table) a lane that finishes first waits for the other at every meeting, and
# two-thread times can come out anywhere; that is why the
# page does not assert an order between them.
#
# > **For contributors: what decides two-thread times on this machine.** (1) *Which BLAS kernels.*
# > The machine's environment may pin OpenBLAS to its AVX2 kernels (`OPENBLAS_CORETYPE`, printed in
# > the first cell as the BLAS architecture) although the CPU has AVX-512; the benchmark suite removes
# > that pin (benchmarks/PERFORMANCE.md, 'OpenBLAS's AVX-512 kernels in the suite'). (2) *Which Numba
# > threading layer.* OpenMP's idle threads spin-wait, and two spinning pools on two cores steal each
# > other's cores; tinycnn selects Numba's "workqueue" layer, whose threads sleep
# > (`tinycnn/kernels/__init__.py`; 'Numba threading layer'). (3) *The GIL.* Two lanes run at the same
# > time only because their kernels release Python's global interpreter lock: BLAS calls do, and
# > every Numba kernel is compiled with `nogil=True` (`tinycnn/_jit.py`; 'nogil kernels'). The lanes'
# > Python code between kernels still takes turns on the lock ('Batch lanes').

# %%
print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(not set)')}, "
      f"Numba threading layer: {numba.threading_layer()}")

# %% [markdown]
# ### 3.7 Blocks: thin convolutions in cache-sized pieces
#
# The blocks pass runs second, but its effect is easiest to see on one thread, which is where it
# acts: inside a lane, or with one thread in all. A *thin* convolution (few channels, a large map)
# has columns far larger than its weights: resnet20's 16 -> 16 layers at 32 x 32 and batch 64 have
# (144, 65,536) columns, 37.7 MB, on which the product does only 2 x 16 flops per number. Written
# whole by im2col and read back by the product, they travel through main memory; cut into blocks of
# output pixels (about 1 MB of columns each), they are written and read while still in the core's
# cache. The product is the same, done block by block, and backward does the same (the weight
# gradient summed over the blocks, a stride-1 layer's input gradient as the blocked convolution of the
# gradient with the flipped filter). Here one such layer on one thread, with the path switched off
# and on for the same op, and the two results compared:

# %%
THIN_BATCH = 8 if FAST else 64
thin = tc.Conv2D(16, 16, 3, padding=1, rng=np.random.default_rng(21))
thin_plan = tc.fast.compile([thin, tc.ReLU()], passes=[p for p in RUN if p != "lanes"])
thin_op = thin_plan.graph.nodes[0].op
print("the blocks pass's note:", [n for n in thin_plan.graph.nodes[0].notes if "blocks" in n])
xt = np.ascontiguousarray(np.random.default_rng(22).standard_normal((16, 32, 32, THIN_BATCH),
                                                                   dtype=np.float32)).transpose(3, 0, 1, 2)
gt = np.random.default_rng(23).standard_normal((THIN_BATCH, 16, 32, 32), dtype=np.float32)


def thin_step():
    y = np.array(thin_op.forward(xt))
    return y, np.array(thin_op.backward(gt, True)), thin_op.grads["weight"].copy()


results, t_thin = {}, {}
with threads(1):
    for blocked in (False, True):
        thin_op.cfg.conv_blocks = blocked
        results[blocked] = thin_step()
        t_thin[blocked] = median_time(thin_step, REPS)
print(f"16 -> 16 conv, 32 x 32, batch {THIN_BATCH}, forward + backward on one thread: one product "
      f"{t_thin[False] * 1e3:.1f} ms, in blocks {t_thin[True] * 1e3:.1f} ms "
      f"({t_thin[False] / t_thin[True]:.2f}x)")
# S for the rounding bounds: the same layer on |x|, |W|, |b|, |g| in float64 (plain code)
abs_layer = tc.Conv2D(16, 16, 3, padding=1, dtype=np.float64)
abs_layer.weight.data[...] = np.abs(thin.weight.data)
abs_layer.bias.data[...] = np.abs(thin.bias.data)
s_out = abs_layer.forward(np.abs(np.asarray(xt, np.float64)))
s_dx = abs_layer.backward(np.abs(gt).astype(np.float64))
terms = (16 * 9 + 1, 16 * 9, THIN_BATCH * 32 * 32)          # each output's, input gradient's, dW's sum
for name, a, b, n_terms, s_abs in zip(("output", "input gradient", "weight gradient"), results[False],
                                      results[True], terms, (s_out, s_dx, abs_layer.weight.grad)):
    assert_agree(f"{name}, one product vs blocks", a, b, rounding_bound(n_terms, s_abs, np.float32))

# %% [markdown]
# The two paths sum the same products in another order, so they agree to float32 rounding, not
# bitwise (the tests hold the blocked path to the layers' own code in float64 and within the derived
# float32 bound). Whether the blocks pay on this machine shows in the line above; on the benchmark
# machine this layer ran about twice as fast in blocks, a 128 -> 128 layer about 10 % faster, and a
# layer whose weights are over the pass's 640 KB limit no faster (benchmarks/PERFORMANCE.md, 'Thin
# convolutions in cache-sized blocks', and `python -m benchmarks.conv_blocks`).

# %% [markdown]
# ## 4. How tinycnn proves fast equals plain
#
# Every trick above changes *how* the numbers are computed: other summation orders (the bias inside
# the product, split products, lanes), other memory layouts, fused ops, recycled memory. None may
# change *what* is computed. tinycnn checks that by running the same network twice on the same
# input, once as the plain plan (every layer on its own code: the definition) and once as the fast
# plan, and comparing every tensor, one line each: its name, its largest difference, the bound it
# must stay under, and OK (the style of the per-tensor checks in projects such as llm.c).
#
# The check runs in **float64**. There the two sides are the same mathematics rounded in other
# orders, and for a network of this size their rounding errors stay many orders of magnitude below
# the bound the project uses for two float64 implementations of one computation: 1e-10 of the
# tensor's largest entry (tests/tolerances.py). A real mistake is far above it. In float32 the same
# comparison through a whole network would need a bound for the rounding carried from layer to layer,
# so the tests check each float32 op against its layer with that op's own derived bound instead, as
# the ladder did for Conv2D above.
#
# The network is the residual one of section 2, in training mode (batch norm uses the batch's
# statistics and updates its running statistics, which are compared too), with a random gradient
# coming back from above. The batch is cut into lanes here whenever two threads are available: the
# lane thresholds are lowered for this check, so that this small network runs in lanes too.

# %%
def plain_and_fast(model, passes, x, g):
    """Run the plain plan and the fast plan with ``passes`` on the same input, upstream gradient,
    weights and running statistics. Returns {tensor name: (plain, fast)}."""
    start = model.state_dict()                           # weights and batch-norm buffers, copied
    results = []
    for plan in (tc.fast.compile(model, plain=True), tc.fast.compile(model, passes=passes)):
        model.load_state_dict(start)                     # both sides start from the same state
        out = {"output": np.array(plan.forward(x)), "input grad": np.array(plan.backward(g))}
        out.update({f"{name}.grad": p.grad.copy() for name, p in model.named_parameters()})
        out.update({name: np.array(b, np.float64) for name, b in model.named_buffers().items()})
        results.append(out)
    return {name: (results[0][name], results[1][name]) for name in results[0]}


def check(pairs, rel=1e-10):
    """Print one line per tensor: name, max |fast - plain|, bound = rel * max |plain|, OK or NOT OK."""
    ok = True
    print(f"{'tensor':28s} {'max |fast - plain|':>18s} {'bound':>9s}")
    for name, (plain, fast_) in pairs.items():
        diff = float(np.abs(fast_ - plain).max())
        bound = rel * float(np.abs(plain).max())
        ok &= diff <= bound
        print(f"{name:28s} {diff:18.1e} {bound:9.1e}  {'OK' if diff <= bound else 'NOT OK'}")
    return ok


@contextmanager
def small_lanes():
    """Two threads, and lanes for any batch of at least 2 * MIN_LANE_BATCH images, however little work
    each lane gets (the threshold restored afterwards)."""
    old = lanes.MIN_LANE_MACS
    lanes.MIN_LANE_MACS = 0
    try:
        with threads(2):
            yield
    finally:
        lanes.MIN_LANE_MACS = old


res64 = residual_net(np.float64, np.random.default_rng(5))
x64 = np.random.default_rng(6).standard_normal((2 * lanes.MIN_LANE_BATCH, 3, 16, 16))   # (16, 3, 16, 16)
g64 = np.random.default_rng(7).standard_normal((len(x64), 10))                         # dL/dlogits
with small_lanes():
    pairs = plain_and_fast(res64, PASSES, x64, g64)
    probe = tc.fast.compile(res64)
    probe.forward(x64)
print(f"the fast plan ran the batch of {len(x64)} in {len(probe.last.slices)} lane(s)\n")
assert check(pairs), "the fast plan does not compute what the layers compute"
margin = min(1e-10 * float(np.abs(p).max()) / max(float(np.abs(f - p).max()), 1e-300) for p, f in pairs.values())
print(f"\nthe smallest margin: a bound {margin:.0e} times the difference it bounds")

# %% [markdown]
# Every tensor agrees, far below its bound (the last line says by how much at least): what is left
# is the rounding of two float64 computations that add in different orders. The test suite makes the same
# comparison on hundreds of random networks, drawn by hypothesis from the layer set (random shapes,
# strides, paddings, orders and batch sizes, residual and concatenated branches), in lanes and uncut,
# plus a five-step training trajectory (`tests/test_fast_equals_plain.py`).
#
# **Would the check catch a wrong pass?** A test that cannot fail proves nothing, so here is a
# deliberately broken plan: the fusion pass removes the ReLU node after a batch norm and tells the
# batch norm's op to apply it (`fuse_relu`); switch that flag off again and the ReLU is simply lost.
# The same mistake, and one per pass, was planted in the executor while it was written, and the tests
# failed each time (benchmarks/PERFORMANCE.md, 'Executor').

# %%
broken = tc.fast.compile(res64)
for node in broken.graph.nodes:
    if "ReLU fused" in node.notes:
        node.op.cfg.fuse_relu = False                     # the ReLU is gone from the program now
start = res64.state_dict()
y_plain = tc.fast.compile(res64, plain=True).forward(x64)
res64.load_state_dict(start)                             # the same running statistics for both
y_broken = broken.forward(x64)
assert not check({"output (broken plan)": (y_plain, y_broken)}), "the check should have caught the lost ReLU"

# %% [markdown]
# The same comparison also runs for every step of section 3's list, so each pass is checked on its
# own, not only all of them together: the plain plan against the fast plan with the first k passes.

# %%
worst = []
with small_lanes():
    for k in range(len(PASSES) + 1):
        pairs = plain_and_fast(res64, PASSES[:k], x64, g64)
        worst.append(max(float(np.abs(f - p).max()) / float(np.abs(p).max() or 1.0) for p, f in pairs.values()))
        print(f"passes={str(PASSES[:k]):62s} largest difference / largest entry, over {len(pairs)} tensors: "
              f"{worst[-1]:.1e}  {'OK' if worst[-1] <= 1e-10 else 'NOT OK'}")
assert max(worst) <= 1e-10

# %% [markdown]
# **What you have seen.** A `Sequential` runs through a plan: the layers lowered to a graph of nodes
# over numbered values, a fast op per node where one exists and the layer's own code where not, and
# six passes that each change one thing about *how*, never *what*: fusion (fewer passes over memory),
# layout (the product already is the next layer's input, long contiguous runs for im2col), prune (no
# gradient nobody reads), memory (no fresh pages each step), threads and lanes (two cores with as few
# meetings as possible). Each was measured on its own above, and the picture shows what they add up
# to on one network; the arithmetic itself, the matrix multiplies, is the same BLAS call all along,
# which is why the loops-to-im2col step dwarfs everything after it. `python -m benchmarks --sections
# whatif` measures the shipped plan beside the same plan without each pass, against PyTorch, and
# benchmarks/PERFORMANCE.md has every technique with its predicted and measured effect.

# %%
print("load average (1, 5, 15 min) at the end: %.1f %.1f %.1f" % os.getloadavg())

# %% [markdown]
# ## Exercises
#
# Each exercise below comes with a cell: a function for you to complete, and a check that runs it on
# cases whose answer it knows another way and prints `OK`, or `NOT OK` with what differs. As shipped,
# the functions only raise `NotImplementedError`, so the checks say "not attempted yet". Reference
# solutions are in [`solutions/solutions_06.py`](solutions/solutions_06.py); try first.
#
# **Exercise 6.1: the size of im2col's buffer.** Write `im2col_bytes(n, c, h, w, k, s, p, itemsize)`
# and use it: how many times larger than the input is the buffer of the ladder's layer, and how does
# a stride of 2 change that?

# %%
from exercises import ex06


def im2col_bytes(n, c, h, w, k, s, p, itemsize):
    """Bytes of the (C*k*k, N*OH*OW) column matrix (no row of ones)."""
    raise NotImplementedError      # your code here


ex06.check_im2col_bytes(im2col_bytes)

# %% [markdown]
# **Exercise 6.2: im2col in k² slices.** Write an im2col that makes one strided NumPy slice per kernel
# offset (i, j) instead of one per window, in the row and column order of `kernels.im2col_reference`,
# and time it against the plain layer's Numba kernel (`kernels.im2col`).

# %%
def my_im2col(x, k, s, p):
    """x (N, C, H, W) -> (C*k*k, N*OH*OW), columns ordered (n, oh, ow), rows (c, i, j)."""
    raise NotImplementedError      # your code here


ex06.check_im2col(my_im2col)

# %% [markdown]
# **Exercise 6.3: a channel-major array.** Make an array with the shape and values of an NCHW `x`
# whose memory is laid out as (C, H, W, N), as the executor's Conv2D outputs are (section 3.2). Which
# NumPy operation copies, and which only changes the strides?

# %%
def channel_major(x):
    """Same shape and values as x (N, C, H, W); memory in (C, H, W, N) order."""
    raise NotImplementedError      # your code here


ex06.check_channel_major(channel_major)

# %% [markdown]
# **Exercise 6.4: the prune pass by hand.** For a chain of layers trained with
# `backward(g, input_grad=False)`, say what backward must do at each layer: `"skip"` (nothing: no
# parameter at or before it), `"params"` (its parameters' gradients only, no input gradient: nothing
# before it has parameters) or `"full"` (both). For example `[ReLU(), Conv2D(...), ReLU(), Flatten(),
# Dense(...)]` gives `["skip", "params", "full", "full", "full"]`. The check compares your answer with
# the plan the prune pass makes, on chains it builds.

# %%
def backward_work(layers):
    """layers: a list of layers (no containers) -> a list of "skip" / "params" / "full", one per layer."""
    raise NotImplementedError      # your code here


ex06.check_backward_work(backward_work)
