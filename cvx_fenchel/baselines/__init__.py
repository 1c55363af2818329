"""Comparators of the Fenchel lifted network: the 2018 lifted network, Taylor et al.'s ADMM,
Lau et al.'s proximal BCD, and standard networks trained by SGD/Adam (PyTorch, optional)."""
