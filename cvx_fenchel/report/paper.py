"""The numbers the two papers report (``../shared/reference/paper_results.md``) as data, each
mapped to the run that reproduces it: Fig. 1-4 of Gu, Askari and El Ghaoui (AISTATS 2020) by
our model label, and every cell of Table 1 of Askari et al.'s lifted-networks report by
(learning rate, hidden layers, column). :mod:`cvx_fenchel.report` compares runs with them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CIFAR_NOTE", "FIGURE_NUMBERS", "PAPER", "PAPER_SOURCE", "PaperNumber", "TABLE1_ARCHS",
           "TABLE1_COLUMNS", "TABLE1_LRS", "TABLE1_SEEDS", "TARGETS"]

PAPER_SOURCE = "../shared/reference/paper_results.md"


@dataclass(frozen=True)
class PaperNumber:
    """One number reported in a paper: ``target`` (fig1..fig4, table1), ``model`` (our run's
    label for a figure; Table 1's column: ``lifted-model``, ``normal``, ``xavier``, ``var-scale``,
    ``lifted``), the reported test accuracy and, for Table 1, its ``two_std``, ``arch`` (hidden
    layers) and ``lr``."""

    target: str
    model: str
    paper: float
    paper_label: str
    two_std: float | None = None
    arch: str | None = None
    lr: float | None = None

    @property
    def key(self) -> str:
        if self.target == "table1":
            return f"table1/lr={self.lr:g}/{self.arch}/{self.model}"
        return f"{self.target}/{self.model}"


#: per figure: title, dataset, the paper's epochs (None: until convergence), x-axis label
TARGETS = {
    "fig1": ("Fig. 1: MNIST 784-300-10, MSE loss, full-batch lifted models (paper: until "
             "convergence)", "mnist", None, "full-batch sweep (iteration)"),
    "fig2": ("Fig. 2: MNIST 784-300-10, cross-entropy, batched (paper: 10 epochs)", "mnist", 10,
             "epoch"),
    "fig3": ("Fig. 3: MNIST LeNet-5, cross-entropy (paper: 20 epochs)", "mnist", 20, "epoch"),
    "fig4": ("Fig. 4: CIFAR-10 LeNet-5, cross-entropy, one-gradient-step W (paper: 80 epochs)",
             "cifar10", 80, "epoch"),
    "table1": ("Table 1 (Askari et al.): MNIST, lifted model and standard networks by "
               "initialisation, 17 epochs, mean +- 2 std over 5 runs", "mnist", 17, "epoch"),
}

FIGURE_NUMBERS = {
    "fig1": (("taylor-admm", 0.834, "Taylor et al. 2016 (ADMM)"), ("lau-bcd", 0.914, "Lau et al. "
             "2018 (BCD)"), ("lnn", 0.863, "Askari et al. 2018 (lifted NN)"),
             ("sgd", 0.957, "neural network (SGD)"), ("fenchel", 0.961, "Fenchel lifted network")),
    "fig2": (("sgd", 0.943, "SGD"), ("adam", 0.976, "Adam"), ("fenchel", 0.976, "Fenchel")),
    "fig3": (("sgd", 0.986, "SGD"), ("adam", 0.989, "Adam"), ("fenchel", 0.990, "Fenchel")),
    "fig4": (("sgd", 0.565, "SGD"), ("adam", 0.625, "Adam"), ("fenchel", 0.606, "Fenchel")),
}
TABLE1_ARCHS = ("300", "300-100", "500-150", "500-200-100", "400-200-100-50")
TABLE1_LRS = (1e-5, 1e-6)
TABLE1_COLUMNS = (("lifted-model", "lifted model"), ("normal", "NN[Normal]"),
                  ("xavier", "NN[Xavier]"), ("var-scale", "NN[var-scale]"), ("lifted", "NN[Lifted]"))
TABLE1_SEEDS = 5
_T1 = {  # lr -> rows of TABLE1_ARCHS, columns of TABLE1_COLUMNS: (mean, 2 std)
    1e-5: (((0.898, 0.005), (0.915, 0.004), (0.923, 0.005), (0.924, 0.003), (0.962, 0.003)),
           ((0.875, 0.005), (0.919, 0.003), (0.932, 0.003), (0.931, 0.003), (0.969, 0.004)),
           ((0.865, 0.005), (0.927, 0.003), (0.936, 0.004), (0.935, 0.005), (0.970, 0.005)),
           ((0.853, 0.003), (0.927, 0.001), (0.939, 0.005), (0.935, 0.003), (0.958, 0.008)),
           ((0.770, 0.015), (0.919, 0.005), (0.938, 0.003), (0.936, 0.006), (0.919, 0.030))),
    1e-6: (((0.898, 0.005), (0.800, 0.011), (0.836, 0.008), (0.844, 0.011), (0.875, 0.022)),
           ((0.875, 0.005), (0.792, 0.013), (0.838, 0.007), (0.842, 0.009), (0.899, 0.021)),
           ((0.865, 0.005), (0.824, 0.007), (0.850, 0.004), (0.858, 0.002), (0.890, 0.018)),
           ((0.853, 0.003), (0.821, 0.017), (0.857, 0.007), (0.848, 0.011), (0.926, 0.053)),
           ((0.770, 0.015), (0.751, 0.045), (0.838, 0.017), (0.815, 0.020), (0.959, 0.003))),
}

#: every number of paper_results.md, in its order (figures' models left to right, Table 1 by
#: learning rate, then row, then column)
PAPER: tuple[PaperNumber, ...] = tuple(
    [PaperNumber(t, m, v, lab) for t, rows in FIGURE_NUMBERS.items() for m, v, lab in rows]
    + [PaperNumber("table1", col, mean, lab, two_std=s2, arch=arch, lr=lr)
       for lr in TABLE1_LRS for arch, row in zip(TABLE1_ARCHS, _T1[lr])
       for (col, lab), (mean, s2) in zip(TABLE1_COLUMNS, row)])

CIFAR_NOTE = ("CIFAR-10 JPEG quality-75 copy (../shared/data/cifar10/cifar10_jpeg_q75.npz), not "
              "the official pixels: accuracies close to, not identical with, the official archive's")
