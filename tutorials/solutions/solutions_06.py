"""Reference solutions to the exercises of tutorial 6."""
import _run  # noqa: F401  (sys.path)

import numpy as np

from exercises import ex06


def im2col_bytes(n, c, h, w, k, s, p, itemsize):
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    return c * k * k * n * oh * ow * itemsize


def my_im2col(x, k, s, p):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = np.empty((c, k, k, n, oh, ow), dtype=x.dtype)
    for i in range(k):                                   # one strided slice per kernel offset (i, j)
        for j in range(k):
            cols[:, i, j] = xp[:, :, i:i + s * oh:s, j:j + s * ow:s].transpose(1, 0, 2, 3)
    return cols.reshape(c * k * k, n * oh * ow)


def channel_major(x):
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


def backward_work(layers):
    answer, seen_params = [], False
    for layer in layers:
        has_params = bool(layer.parameters())
        if seen_params:
            answer.append("full")                        # something before it needs its input gradient
        elif has_params:
            answer.append("params")                      # the first layer with parameters
        else:
            answer.append("skip")                        # nothing at or before it has parameters
        seen_params = seen_params or has_params
    return answer


def backward_work_wrong(layers):
    """A typical mistake: only the very first layer skips its input gradient."""
    return ["params" if i == 0 else "full" for i in range(len(layers))]


SOLUTIONS = [(ex06.check_im2col_bytes, im2col_bytes), (ex06.check_im2col, my_im2col),
             (ex06.check_channel_major, channel_major),
             (ex06.check_backward_work, backward_work)]
WRONG = [(ex06.check_im2col_bytes, lambda n, c, h, w, k, s, p, b: n * c * h * w * k * k * b),   # ignores stride
         (ex06.check_im2col, lambda x, k, s, p: my_im2col(x, k, s, p)[::-1]),                 # rows reversed
         (ex06.check_channel_major, lambda x: x.copy()),                                     # still NCHW memory
         (ex06.check_backward_work, backward_work_wrong)]

if __name__ == "__main__":
    raise SystemExit(0 if _run.run_all(SOLUTIONS) else 1)
