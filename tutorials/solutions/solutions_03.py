"""Reference solutions to the exercises of tutorial 3."""
import _run  # noqa: F401  (sys.path)

from exercises import ex03


def predict_shapes(stack, input_shape):
    c, h, w = input_shape
    shapes = []
    for spec in stack:
        if spec[0] == "conv":
            _, o, k, s, p = spec
            c, h, w = o, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        else:
            k = spec[1]
            h, w = (h - k) // k + 1, (w - k) // k + 1          # pooling: stride = kernel, no padding
        shapes.append((c, h, w))
    return shapes


def conv_cost(c_in, c_out, k, h_out, w_out):
    return c_out * c_in * k * k + c_out, (c_out * h_out * w_out) * (c_in * k * k)


LEARNING_RATES = (0.1, 1e-3, 3.0)            # good, too small, too large: see the check's printout

SOLUTIONS = [(ex03.check_shapes, predict_shapes), (ex03.check_conv_cost, conv_cost),
             (ex03.check_learning_rate, LEARNING_RATES)]
WRONG = [(ex03.check_shapes, lambda stack, shape: [(shape[0], shape[1], shape[2])] * len(stack)),
         (ex03.check_conv_cost, lambda c, o, k, h, w: (o * c * k * k, o * h * w * c * k * k)),   # bias forgotten
         (ex03.check_learning_rate, (1e-3, 1e-4, 0.1))]

if __name__ == "__main__":
    raise SystemExit(0 if _run.run_all(SOLUTIONS) else 1)
