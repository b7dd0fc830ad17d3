"""Checks for the exercises of tutorial 4 (overfitting and learning rates)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from . import exercise


@exercise("4.1 (AdamW: decoupled weight decay)")
def check_adamw_step(adamw_step) -> list[str]:
    """adamw_step(w, g, m, v, t, lr, wd, beta1=0.9, beta2=0.999, eps=1e-8) -> (w, m, v): one AdamW step
    (Loshchilov and Hutter; torch.optim.AdamW): w <- w - lr * wd * w, then Adam's step on g (t counts
    from 1). Checked against torch.optim.AdamW when PyTorch is installed, else against the formula."""
    rng = np.random.default_rng(5)
    problems = []
    w0 = rng.standard_normal(6)
    grads = rng.standard_normal((5, 6)) * np.array([1e-3, 1e-2, 0.1, 1, 10, 100])
    lr, wd = 1e-2, 0.1
    try:
        import torch
        p = torch.nn.Parameter(torch.tensor(w0))
        opt = torch.optim.AdamW([p], lr=lr, weight_decay=wd)
        expected = []
        for g in grads:
            p.grad = torch.tensor(g)
            opt.step()
            expected.append(p.detach().numpy().copy())
        source = "torch.optim.AdamW"
    except ImportError:
        w, m, v, expected = w0.copy(), np.zeros(6), np.zeros(6), []
        for t, g in enumerate(grads, 1):
            w = w * (1 - lr * wd)
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            w = w - lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
            expected.append(w.copy())
        source = "the AdamW formula"
    w, m, v = w0.copy(), np.zeros(6), np.zeros(6)
    for t, (g, want) in enumerate(zip(grads, expected), 1):
        w, m, v = adamw_step(w, g, m, v, t, lr, wd)
        w = np.asarray(w, dtype=np.float64)
        if not np.allclose(w, want, rtol=1e-12, atol=1e-14):
            problems.append(f"after step {t}: your weights {np.round(w, 6).tolist()}, {source} gives "
                            f"{np.round(want, 6).tolist()}")
            break
    return problems


@exercise("4.2 (the noise of an accuracy difference on a shared test set)")
def check_paired_se(paired_se) -> list[str]:
    """paired_se(correct_a, correct_b) -> standard error of mean(correct_a) - mean(correct_b), where both
    are boolean arrays over the same test images, from the paired outcomes."""
    rng = np.random.default_rng(6)
    problems = []
    for n, p, agree in [(2000, 0.55, 0.8), (500, 0.9, 0.95), (1000, 0.5, 0.5)]:
        a = rng.random(n) < p
        b = np.where(rng.random(n) < agree, a, rng.random(n) < p)          # correlated with a
        d = a.astype(float) - b.astype(float)                                # per-image difference
        expected = d.std(ddof=0) / np.sqrt(n)                                # the SE of a mean of n values
        got = float(paired_se(a, b))
        if not np.isclose(got, expected, rtol=1e-9):
            problems.append(f"n={n}: you say {got:.6f}, the standard error of the mean paired difference is "
                            f"{expected:.6f}")
    return problems


@exercise("4.3 (early stopping by hand)")
def check_early_stopping(early_stop) -> list[str]:
    """early_stop(val_losses, patience) -> (best_epoch, epochs_run), 0-based best epoch: training stops
    after the first epoch that is `patience` epochs past the best so far without a strictly lower loss."""
    from tinycnn.callbacks import EarlyStopping

    problems = []
    cases = [[3, 2, 1, 1.5, 1.2, 1.1, 0.9, 1, 1, 1, 1], [5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6], [2, 2, 2, 2, 1]]
    for losses in cases:
        for patience in (1, 2, 3):
            stopper = EarlyStopping(monitor="val_loss", patience=patience)
            stopper.model = SimpleNamespace(stop_training=False)           # what fit() would give it
            stopper.on_train_begin({})
            for epoch, loss in enumerate(losses):
                run = epoch + 1
                stopper.on_epoch_end(epoch, {"val_loss": loss})
                if stopper.model.stop_training:
                    break
            expected = (stopper.best_epoch, run)
            got = tuple(int(v) for v in early_stop(losses, patience))
            if got != expected:
                problems.append(f"losses {losses}, patience {patience}: you say {got}, EarlyStopping gives {expected}")
    return problems
