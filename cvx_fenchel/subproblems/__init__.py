r"""The block-coordinate-descent subproblems, each written twice.

Every subproblem is one class that holds its data and pairs

* ``objective(x)``: the objective in array code (NumPy or CuPy),
* ``solve_fast(x0=None, tol=None, max_iter=None)``: the hand-written fast path
  (accelerated proximal gradient with restart, a W-step strategy, or bisection),
  returning a :class:`~cvx_fenchel.solvers.FastResult` with the minimiser,
  iterations, a scale-free optimality residual and the ``method`` used,
* ``cvxpy_problem()`` / ``solve_cvxpy(solver)``: the same problem declared in
  CVXPY from the same data (exact, for small instances).

Notation (samples in rows): layer ``l`` has a linear map ``A_l`` (dense,
convolution, possibly preceded by pooling/flatten), weights ``(W_l, b_l)``,
pre-activation ``U_l = A_l(X_l; W_l) + b_l`` and activation ``phi_l`` with
Fenchel-Young divergence ``B_l`` (:mod:`cvx_fenchel.activations`). Losses are
summed over the batch (:mod:`cvx_fenchel.losses`).

=================  ==========================================================================
class (``name``)   problem
=================  ==========================================================================
XHidden            :math:`\min_{Z \in \mathrm{dom} F_{l-1}} c\lambda_l \sum B_l(X_{l+1}, A_l(Z) + b_l) + \lambda_{l-1} \sum B_{l-1}(Z, U_{l-1})`
XLast              :math:`\min_{Z \in \mathrm{dom} F_{L-1}} c\,\mathcal L(Y, A_L(Z) + b_L) + \lambda_{L-1} \sum B_{L-1}(Z, U_{L-1})`
WHidden            :math:`\min_{W,b} \lambda \sum B(X_{l+1}, A(X_l; W) + b) + \rho\|(W,b)\|^2 + \gamma\|(W,b) - (W^0,b^0)\|^2`
WLast              :math:`\min_{W,b} c\,\mathcal L(Y, A(X_L; W) + b) + \rho\|(W,b)\|^2 + \gamma\|(W,b) - (W^0,b^0)\|^2`
LNNX               :math:`\min_{Z \ge 0} \lambda_l \|A_l(Z) + b_l - X_{l+1}\|^2 + \lambda_{l-1}\|Z - U_{l-1}\|^2` (2018 model)
LNNW               :math:`\min_{W,b} \lambda \|A(X; W) + b - X_{l+1}\|^2 + \rho\|(W,b)\|^2 + \gamma\|(W,b)-(W^0,b^0)\|^2`
LNNSimplexCE       :math:`\min_{Z \in \Delta^m} -\mathrm{Tr}\,Y^\top \log Z + \lambda \|Z - X^0\|^2` (rows on the simplex)
=================  ==========================================================================

``c`` is the original code's ``lbd_coef`` (an extra weight on the next layer's
term inside an X-step). :func:`lower_bound` evaluates the Lagrange lower bound
:math:`G_W(\lambda) = \min_X J(W, X; \lambda) \le p(W)` for one hidden layer.

Modules: :mod:`.terms` (the smooth and proximal pieces), :mod:`.xsteps`, :mod:`.wsteps` and
:mod:`.strategies` (how a W-step is solved), :mod:`.lnn` (the 2018 model), :mod:`.bound` (the
lower bound), :mod:`.instances` (seeded instance generators), :mod:`.benchmark` (MNIST-scale
instances at the original code's settings) and :mod:`.registry` (the kinds of subproblem, what
each applies to, how each is built and solved: what verification iterates).

Adding a subproblem kind: a problem class (``objective``, ``residual``, ``solve_fast``,
``cvxpy_problem``, ``solve_cvxpy``), a generator ``build(spec, xp, dtype) -> Instance`` and one
:func:`register_kind` call; the verification suite then plans, builds and compares its cases for
every registered activation, loss and map it declares it applies to.
"""

from .bound import LowerBound, lower_bound
from .common import inputs_trusted, trusted_inputs
from .instances import Instance, Spec
from .lnn import LNNSimplexCE, LNNW, LNNX
from .registry import SubproblemKind, get_kind, kind_names, kinds, register_kind, unregister_kind
from .strategies import (ClosedForm, Fista, GradientStep, Gram, GramState, SampleSpace, SampleSpaceState,
                         Strategy, select_strategy)
from .wsteps import WHidden, WLast, WStep
from .xsteps import XHidden, XLast, XStep

__all__ = ["trusted_inputs", "inputs_trusted", "XHidden", "XLast", "WHidden", "WLast", "LNNX", "LNNW", "LNNSimplexCE", "XStep", "WStep",
           "lower_bound", "LowerBound", "Strategy", "ClosedForm", "SampleSpace", "Gram", "Fista", "GradientStep",
           "SampleSpaceState", "GramState", "select_strategy", "SubproblemKind", "register_kind", "unregister_kind",
           "get_kind", "kinds", "kind_names", "Spec", "Instance", "SUBPROBLEMS"]

#: Subproblem id -> problem class, for the kinds registered at import (the registry is the source).
SUBPROBLEMS = {k.name: k.problem for k in kinds() if isinstance(k.problem, type)}
