"""Issue 16, points 3-5: the cost model of docs/scaling.md, and the measurement it still lacks.

    python docs/scaling_bench.py model                  # the tables of docs/scaling.md (formulas only)
    python docs/scaling_bench.py measure [--n 60000] [--workers 2] [--epochs 1] [--out runs/scaling/mnist-2w.json]

``model`` evaluates the per-sweep formulas of docs/scaling.md under the assumptions stated there
(nothing is measured). ``measure`` times one Algorithm-1 sweep of 784-300-10 on the first ``n``
MNIST training images (``../shared/data/mnist``, else the shipped subset) three ways: the
single-process ``BCDTrainer(algorithm="full")``, :func:`cvx_fenchel.dataparallel.fit_full_batch_parallel`
on a LocalCluster of ``--workers`` processes (one thread each), and the serial versus the threaded
layer-parallel W-steps (:func:`cvx_fenchel.dataparallel.w_steps_concurrent`) at the same point;
it records how far the parallel weights, pre-activations and X are from the serial ones
(relative) and writes the seconds and speed-ups as JSON. Run it on an otherwise idle machine: timings taken beside other
jobs are not speed-ups.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

#: Assumptions of the model (docs/scaling.md says why): sustained FLOP rate of one worker (one
#: core, float64, GEMM-bound work), the driver's link bandwidth (bytes/s), one message's network
#: latency (s) and Dask's per-message overhead at the driver (s: serialisation, actor call).
ASSUME = {"flops": 50e9, "bandwidth": 1.25e9, "latency": 50e-6, "per_message": 0.3e-3,
          "T_x": 50, "T_w": 30, "c_elem": 20}


def sweep_cost(widths, n, P, a=ASSUME):
    """Per-sweep cost of Algorithm 1 (K = 1, every step at its iteration cap) on P workers:
    dict of worker FLOPs, driver FLOPs, rounds (synchronisations), bytes through the driver,
    and the predicted seconds (compute, driver, latency, bandwidth, total)."""
    d = list(widths)
    L = len(d) - 2  # hidden lifted layers; weights W_0..W_L
    m = n / P
    Tx, Tw, ce = a["T_x"], a["T_w"], a["c_elem"]
    worker = driver = 0.0
    rounds = 0
    bytes_ = 0.0
    for l in range(L, 0, -1):  # X-steps X_L..X_1
        worker += Tx * (4 * m * d[l] * d[l + 1] + ce * m * (d[l] + d[l + 1])) + 2 * m * d[l - 1] * d[l]
        rounds += Tx + 1
        bytes_ += P * 8 * (d[l - 1] * d[l] + d[l] * d[l + 1]) + (Tx + 1) * P * 2 * 3 * 8
    for l in range(L, -1, -1):  # W-steps W_L..W_0
        p, k = d[l] + 1, d[l + 1]
        worker += 2 * m * p * p + (Tw + 2) * (4 * m * p * k + ce * m * k)
        driver += p ** 3 * (1 / 3 + 2) + Tw * 2 * p * p * k
        rounds += Tw + 5
        bytes_ += P * 8 * p * p + (Tw + 2) * P * 2 * 8 * p * k
    rounds += 2  # the batch record
    t_comp = worker / a["flops"]
    t_driver = driver / a["flops"]
    t_lat = rounds * (a["latency"] + P * a["per_message"])
    t_bw = bytes_ / a["bandwidth"]
    return {"worker_flops": worker, "driver_flops": driver, "rounds": rounds, "driver_bytes": bytes_,
            "t_compute": t_comp, "t_driver": t_driver, "t_latency": t_lat, "t_bandwidth": t_bw,
            "t_total": t_comp + t_driver + (t_lat + t_bw if P > 1 else 0.0)}


def w_layer_cost(widths, n, a=ASSUME):
    """FLOPs of each layer's W-step (one worker, whole batch): the layer-parallel W-steps take
    the largest instead of the sum."""
    d = list(widths)
    out = []
    for l in range(len(d) - 1):
        p, k = d[l] + 1, d[l + 1]
        out.append(2 * n * p * p + (a["T_w"] + 2) * (4 * n * p * k + a["c_elem"] * n * k) + p ** 3 * 7 / 3
                   + a["T_w"] * 2 * p * p * k)
    return out


def model() -> None:
    for name, n in (("MNIST 784-300-10, n = 60,000", 60_000), ("10x data, n = 600,000", 600_000)):
        base = sweep_cost((784, 300, 10), n, 1)
        print(f"\n{name}: serial sweep {base['worker_flops'] + base['driver_flops']:.3g} FLOP, "
              f"{base['t_total']:.3g} s predicted")
        print("| P | FLOP/worker | driver FLOP | rounds | bytes via driver | compute s | driver s | "
              "latency s | bandwidth s | sweep s | speed-up |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for P in (2, 8, 64):
            c = sweep_cost((784, 300, 10), n, P)
            print(f"| {P} | {c['worker_flops']:.3g} | {c['driver_flops']:.3g} | {c['rounds']} | "
                  f"{c['driver_bytes']:.3g} | {c['t_compute']:.3g} | {c['t_driver']:.3g} | "
                  f"{c['t_latency']:.3g} | {c['t_bandwidth']:.3g} | {c['t_total']:.3g} | "
                  f"{base['t_total'] / c['t_total']:.2f} |")
    for widths in ((784, 300, 10), (784, 300, 300, 10)):
        f = w_layer_cost(widths, 60_000)
        print(f"\nlayer-parallel W-steps {'-'.join(map(str, widths))}: per layer {[f'{v:.3g}' for v in f]} FLOP,"
              f" bound on the W-half speed-up sum/max = {sum(f) / max(f):.2f}")


def measure(n: int, workers: int, epochs: int, out: str | None) -> dict:
    import numpy as np
    from dask.distributed import Client, LocalCluster

    from cvx_fenchel import bcd
    from cvx_fenchel.config import TrainConfig
    from cvx_fenchel.dataparallel import fit_full_batch_parallel, w_steps_concurrent
    from cvx_fenchel.datasets import load_mnist
    from cvx_fenchel.network import make_network
    from cvx_fenchel.trainer import BCDTrainer

    here = os.path.dirname(os.path.abspath(__file__))
    full = os.path.join(here, "..", "..", "shared", "data", "mnist")
    X, y, _, _ = load_mnist(full if os.path.isdir(full) else None, normalize=True, flatten=True)
    X, y = np.asarray(X[:n], dtype=np.float64), np.asarray(y[:n])
    Y = np.eye(10)[y]
    net = make_network("784-300-10", dtype="float64")
    cfg = TrainConfig(epochs=epochs, algorithm="full", dtype="float64", backend="numpy")
    res = {"n": int(X.shape[0]), "workers": workers, "epochs": epochs, "cpu_count": os.cpu_count(),
           "load_before": os.getloadavg()}
    t = time.perf_counter()
    ref = BCDTrainer(net, cfg)
    ref.fit(X, Y, y)
    res["serial_s"] = time.perf_counter() - t
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
            Client(c) as client:
        t = time.perf_counter()
        par = fit_full_batch_parallel(net, X, Y, client, workers, cfg, y=y)
        res["parallel_s"] = time.perf_counter() - t
        res["rounds"] = par.pool.reductions
        res["max_rel_diff_weights"] = max(float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
                                          for p, q in zip(ref.weights, par.weights) for a, b in zip(p, q))
        # what the objective sees: pre-activations (weights differ along directions of constant-zero
        # pixels when rho = gamma = 0, see docs/scaling.md section 1)
        Xs = par.gather_Xs()
        res["max_rel_diff_preactivations"] = max(
            float(np.max(np.abs(net.pre_activation(l, Xs[l], ref.weights) - net.pre_activation(l, Xs[l], par.weights)))
                  / np.max(np.abs(net.pre_activation(l, Xs[l], ref.weights)))) for l in range(net.L + 1))
        res["max_rel_diff_X"] = max(float(np.max(np.abs(ref.state.Xs[l] - Xs[l])) / np.max(np.abs(ref.state.Xs[l])))
                                    for l in range(1, net.L + 1))
        par.close()
    res["speedup_data_parallel"] = res["serial_s"] / res["parallel_s"]
    st = ref.state
    t = time.perf_counter()
    bcd.w_steps_serial(net, cfg, st.weights, st.Xs, st.Y, st.weights)
    res["w_serial_s"] = time.perf_counter() - t
    t = time.perf_counter()
    w_steps_concurrent(net, cfg, st.weights, st.Xs, st.Y, st.weights)
    res["w_threads_s"] = time.perf_counter() - t
    res["speedup_w_threads"] = res["w_serial_s"] / res["w_threads_s"]
    res["load_after"] = os.getloadavg()
    print(json.dumps(res, indent=1))
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            json.dump(res, f, indent=1)
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("model")
    m = sub.add_parser("measure")
    m.add_argument("--n", type=int, default=60_000)
    m.add_argument("--workers", type=int, default=2)
    m.add_argument("--epochs", type=int, default=1)
    m.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.cmd == "model":
        model()
    else:
        measure(args.n, args.workers, args.epochs, args.out)


if __name__ == "__main__":
    sys.exit(main())
