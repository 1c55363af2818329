"""The papers' figures and the gap studies as data: which models, with which options, epochs and
reported numbers. :mod:`cvx_fenchel.reproduce` runs them (its docstring describes each figure);
settings from ``reference/original_settings.md``, numbers from ``reference/paper_results.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ALL", "CIFAR_NOTE", "FIGURES", "TARGETS", "Figure", "Run"]


@dataclass(frozen=True)
class Run:
    """One model of a figure: ``train(model, {**options, "epochs": epochs, ...})`` of
    :mod:`cvx_fenchel.experiments` (``options`` as ``(name, value)`` pairs). ``label`` names a
    variant (its folder and row); ``variant`` says what differs from the paper's setting."""

    model: str
    options: tuple = ()
    epochs: int = 10
    paper: float | None = None  # reported final test accuracy (of the model a variant varies)
    label: str | None = None
    variant: str | None = None

    @property
    def name(self) -> str:
        return self.label or self.model


@dataclass(frozen=True)
class Figure:
    """A figure: its runs, the architecture and data set they share, whether they train until
    convergence (``epochs`` then the maximum) and, for a gap study, the figure it studies."""

    title: str
    arch: str
    runs: tuple = field(default_factory=tuple)
    dataset: str = "mnist"
    until_converged: bool = False
    gaps_of: str | None = None


#: Every CIFAR-10 number carries this note.
CIFAR_NOTE = "measured on the JPEG quality-75 copy of CIFAR-10"

_CE = (("loss", "cross_entropy"),)
#: The paper's Fig. 4 W option: one gradient step (Adam, step 1e-3) instead of solving W-steps.
_ONE_STEP = (("w_step", "gradient"), ("optimizer", "adam"), ("lr", 1e-3))

FIGURES: dict[str, Figure] = {
    "fig1": Figure(
        "Fig. 1 (Gu et al. 2020): MNIST 784-300-10, MSE loss, full-batch lifted models, until "
        "convergence",
        "784-300-10",
        (Run("taylor-admm", (("loss", "mse"),), epochs=1000, paper=0.834),
         Run("lau-bcd", (("loss", "mse"),), epochs=1000, paper=0.914),
         Run("lnn", (("loss", "mse"),), epochs=300, paper=0.863),
         Run("sgd", (("loss", "mse"),), epochs=200, paper=0.957),
         Run("fenchel", (("loss", "mse"), ("algorithm", "full")), epochs=300, paper=0.961)),
        until_converged=True),
    "fig2": Figure(
        "Fig. 2 (Gu et al. 2020): MNIST 784-300-10, cross-entropy, 10 epochs",
        "784-300-10",
        (Run("sgd", _CE, epochs=10, paper=0.943),
         Run("adam", _CE, epochs=10, paper=0.976),
         Run("fenchel", _CE, epochs=10, paper=0.976))),
    "fig3": Figure(
        "Fig. 3 (Gu et al. 2020): MNIST LeNet-5, cross-entropy, 20 epochs",
        "lenet5",
        (Run("sgd", _CE, epochs=20, paper=0.986),
         Run("adam", _CE, epochs=20, paper=0.989),
         Run("fenchel", _CE, epochs=20, paper=0.990))),
    "fig4": Figure(
        "Fig. 4 (Gu et al. 2020): CIFAR-10 LeNet-5, cross-entropy, 80 epochs; Fenchel W-steps "
        "one gradient step",
        "lenet5",
        (Run("sgd", _CE, epochs=80, paper=0.565),
         Run("adam", _CE, epochs=80, paper=0.625),
         Run("fenchel", _CE + _ONE_STEP, epochs=80, paper=0.606)),
        dataset="cifar10"),
    "fig2-gaps": Figure(
        "Gap study of Fig. 2: SGD step sizes (MNIST 784-300-10, cross-entropy, 10 epochs)",
        "784-300-10",
        (Run("sgd", _CE + (("lr", 0.05),), epochs=10, paper=0.943, label="sgd-lr0.05",
             variant="SGD step 0.05 (default 0.01)"),
         Run("sgd", _CE + (("lr", 0.1),), epochs=10, paper=0.943, label="sgd-lr0.1",
             variant="SGD step 0.1 (default 0.01)")),
        gaps_of="fig2"),
    "fig3-gaps": Figure(
        "Gap study of Fig. 3: Fenchel settings, input standardisation and SGD step sizes (MNIST "
        "LeNet-5, cross-entropy, 20 epochs)",
        "lenet5",
        (Run("fenchel", _CE + (("gamma", (1e-4, 0.01, 1.0, 1.0, 10.0)),), epochs=20, paper=0.990,
             label="fenchel-gamma-out-10",
             variant="output layer gamma 10 (the original rhod) instead of 10 * batch_size"),
         Run("fenchel", _CE + (("dtype", "float64"),), epochs=20, paper=0.990,
             label="fenchel-float64", variant="float64 instead of float32"),
         Run("fenchel", _CE + (("tol_x", 1e-7), ("tol_w", 1e-7)), epochs=20, paper=0.990,
             label="fenchel-tol1e-7", variant="X- and W-step tolerances 1e-7 instead of 1e-5"),
         Run("fenchel", _CE + (("standardize", True),), epochs=20, paper=0.990, label="fenchel-std",
             variant="inputs standardised (training pixels' mean and deviation) instead of [0, 1]; "
                     "tolerances the default 1e-4 (the Fig. 3 run: 1e-5; docs/results/gaps/fig3-fenchel)"),
         Run("sgd", _CE + (("lr", 0.05),), epochs=20, paper=0.986, label="sgd-lr0.05",
             variant="SGD step 0.05 (default 0.01)"),
         Run("sgd", _CE + (("lr", 0.1),), epochs=20, paper=0.986, label="sgd-lr0.1",
             variant="SGD step 0.1 (default 0.01)")),
        gaps_of="fig3"),
    "fig4-gaps": Figure(
        "Gap study of Fig. 4: Adam step size, the Fenchel X-step weights, the convolutional "
        "layers' step and input standardisation (CIFAR-10 LeNet-5, cross-entropy, 80 epochs)",
        "lenet5",
        (Run("adam", _CE + (("lr", 1e-4),), epochs=80, paper=0.625, label="adam-lr1e-4",
             variant="Adam step 1e-4 (default 1e-3)"),
         Run("fenchel", _CE + _ONE_STEP + (("coef", (1.0, 1.0, 1.0, 1.0, 1.0)),), epochs=80,
             paper=0.606, label="fenchel-coef1",
             variant="every X-step weight coef 1 (each step minimises J) instead of the "
                     "original code's lbd_coef (1, 1, 5, 1, 5)"),
         Run("fenchel", _CE + _ONE_STEP[:2] + (("lr", (3e-3, 3e-3, 1e-3, 1e-3, 1e-3)),
                                              ("coef", (1.0, 1.0, 1.0, 1.0, 1.0)),
                                              ("tol_x", 1e-5), ("tol_w", 1e-5)), epochs=80,
             paper=0.606, label="fenchel-coef1-convlr3e-3",
             variant="as fenchel-coef1 (tolerances 1e-5, as that run), with Adam step 3e-3 for "
                     "the two convolutional layers (docs/results/gaps/fig4-conv)"),
         Run("adam", _CE + (("standardize", True),), epochs=80, paper=0.625, label="adam-std",
             variant="inputs standardised per channel (training mean and deviation) instead of "
                     "[0, 1] pixels (docs/results/gaps/fig4-adam)"),
         Run("fenchel", _CE + _ONE_STEP + (("coef", (1.0, 1.0, 1.0, 1.0, 1.0)), ("standardize", True)),
             epochs=80, paper=0.606, label="fenchel-coef1-std",
             variant="as fenchel-coef1, on inputs standardised per channel; tolerances the default "
                     "1e-4 (fenchel-coef1: 1e-5; docs/results/gaps/fig4-adam)")),
        dataset="cifar10", gaps_of="fig4"),
}
#: What ``all`` runs, in order: the papers' figures, then the gap studies.
ALL = ("fig1", "fig2", "fig3", "fig4", "fig2-gaps", "fig3-gaps", "fig4-gaps")
#: Every target of ``cvx-fenchel reproduce``.
TARGETS = tuple(FIGURES) + ("all",)
