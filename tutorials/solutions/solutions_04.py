"""Reference solutions to the exercises of tutorial 4."""
import _run  # noqa: F401  (sys.path)

import numpy as np

from exercises import ex04


def adamw_step(w, g, m, v, t, lr, wd, beta1=0.9, beta2=0.999, eps=1e-8):
    w = w * (1 - lr * wd)                              # the decay, outside Adam's division
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def paired_se(correct_a, correct_b):
    n = len(correct_a)
    b = np.sum(correct_a & ~correct_b)                # only A right
    c = np.sum(~correct_a & correct_b)                # only B right
    return np.sqrt(b + c - (b - c) ** 2 / n) / n


def early_stop(val_losses, patience):
    best, best_epoch, wait = np.inf, None, 0
    for epoch, loss in enumerate(val_losses):
        if loss < best:
            best, best_epoch, wait = loss, epoch, 0
            continue
        wait += 1
        if wait >= patience:
            return best_epoch, epoch + 1
    return best_epoch, len(val_losses)


def _adam_l2_step(w, g, m, v, t, lr, wd, beta1=0.9, beta2=0.999, eps=1e-8):
    g = g + wd * w                                    # the mistake: L2 inside Adam is not AdamW
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    return w - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps), m, v


SOLUTIONS = [(ex04.check_adamw_step, adamw_step), (ex04.check_paired_se, paired_se),
             (ex04.check_early_stopping, early_stop)]
WRONG = [(ex04.check_adamw_step, _adam_l2_step),
         (ex04.check_paired_se, lambda a, b: np.sqrt(a.mean() * (1 - a.mean()) / len(a) * 2)),   # as if independent
         (ex04.check_early_stopping, lambda losses, patience: (int(np.argmin(losses)), len(losses)))]

if __name__ == "__main__":
    raise SystemExit(0 if _run.run_all(SOLUTIONS) else 1)
