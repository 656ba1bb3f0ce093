"""Runs per second of the tutorial experiment as a hand-written numba kernel, for comparison.

A plain-CPU reference beside `benchmarks/bench_seeds.py`: the same training as `kldiv.train.train`
(see its docstring), written as explicit float32 loops and compiled by numba with
`parallel=True, fastmath=False`, one seed per `numba.prange` iteration. Per seed, inside the timed
kernel: he/glorot uniform initial weights and every epoch's Fisher-Yates shuffle from a per-seed
splitmix64 generator; minibatch SGD with Keras momentum (v = mu*v - lr*g; w += v) on the mean KL
divergence of softmax(logits) from the one-hot targets, batch 32 with the ragged last batch of 20
averaged over its 20 rows; the Keras history (running-mean `loss`/`accuracy`, whole-set
`val_loss`/`val_accuracy` at epoch end) written into (seeds, epochs) arrays; then the final weights
and the final train/validation metrics. The data is the tutorial's `make_blobs(n_samples=1000,
centers=3, n_features=2, cluster_std=2, random_state=2)`, regenerated with NumPy's `RandomState`
exactly as scikit-learn does (as `kldiv.data.make_blobs` does): first 500 rows train, last 500
validation. Same semantics as kldiv, different random numbers, so compare accuracy bands, not runs.

numba is not a kldiv dependency, and this script imports neither jax nor kldiv; run it from the
repository root in a venv of its own:

    python3 -m venv /tmp/numbaenv && /tmp/numbaenv/bin/pip install numba numpy
    /tmp/numbaenv/bin/python benchmarks/numba_reference.py                 # 1, 100, 1000 seeds
    /tmp/numbaenv/bin/python benchmarks/numba_reference.py --seeds 1,100 --threads 1 --repeat 5

The first call (two seeds) compiles; each seed count is then timed as the best of `--repeat` calls
(the machine may be shared). The last lines are the mean +- std of the final train and validation
accuracy over the largest count; the tutorial's band is train 0.826 +- 0.011, test 0.820 +- 0.010.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numba
import numpy as np

# The model's sizes: inputs F, hidden units H, classes C. Module constants, so numba compiles them
# into the kernel as literals: LLVM then unrolls the loops over inputs and classes and knows every
# trip count over hidden units (about 1.2x faster than reading them from array shapes, and what
# lets the kernel's fused loops below vectorise).
N_IN, HIDDEN, N_CLS = 2, 50, 3
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
FINAL_KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")

# splitmix64 (Steele, Lea and Flood 2014): the state advances by a fixed odd constant and every
# output is a bijective mix of the state, so one uint64 per seed is the whole generator. Constants
# are NumPy uint64 so numba keeps every operation in wrapping uint64 arithmetic (a Python int
# operand would promote to float64).
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31, _S32, _S40 = (np.uint64(k) for k in (27, 30, 31, 32, 40))


# ---------------------------------------------------------------------------------------------
# Data (NumPy only)


def make_blobs(
    n_samples: int = 1000,
    n_features: int = 2,
    centers: int = 3,
    cluster_std: float = 2.0,
    center_box: tuple[float, float] = (-10.0, 10.0),
    random_state: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """`sklearn.datasets.make_blobs(..., shuffle=True)` bit for bit: the same RandomState calls.

    Returns X (n_samples, n_features) float64 and y (n_samples,) int64 labels in [0, centers).
    """
    rng = np.random.RandomState(random_state)
    centre_points = rng.uniform(center_box[0], center_box[1], size=(centers, n_features))
    # The first n_samples % centers clusters get one extra row: [334, 333, 333] for the tutorial.
    counts = [n_samples // centers + (1 if i < n_samples % centers else 0) for i in range(centers)]
    x = np.concatenate(
        [
            rng.normal(loc=centre_points[i], scale=cluster_std, size=(n, n_features))
            for i, n in enumerate(counts)
        ]
    )
    y = np.repeat(np.arange(centers, dtype=np.int64), counts)
    order = np.arange(n_samples)
    rng.shuffle(order)
    return x[order], y[order]


def tutorial_data(n_train: int = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train (500, 2), y_train (500, 3), x_val (500, 2), y_val (500, 3)), float32, one-hot y."""
    x, labels = make_blobs()
    x = np.ascontiguousarray(x, dtype=np.float32)
    targets = np.eye(3, dtype=np.float32)[labels]
    return x[:n_train], targets[:n_train], x[n_train:], targets[n_train:]


# ---------------------------------------------------------------------------------------------
# Kernel. Everything is float32 with explicit float32 constants (numba would promote a float64
# literal). The innermost loop of every layer-sized loop nest runs over an output axis, never over
# a summed one, so LLVM vectorises it without reassociating any sum (fastmath is off): the forward
# pass runs over the batch rows (activations as ht (H, B)), the backward pass over the hidden units
# (activations recomputed as h (B, H)). Sums over inputs, hidden units and rows are plain
# sequential chains; the short loops over inputs and classes sit inside and are unrolled.


@numba.njit(fastmath=False)
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@numba.njit(fastmath=False)
def _next(state: np.uint64) -> tuple[np.uint64, np.uint64]:
    """Advance a splitmix64 state: (new state, 64 random bits)."""
    state = state + _GAMMA
    return state, _mix(state)


@numba.njit(fastmath=False)
def _init_uniform(w: np.ndarray, limit: np.float32, state: np.uint64) -> np.uint64:
    """Fill the flat float32 array w with U(-limit, limit); returns the advanced state."""
    scale = np.float32(2.0**-24)
    width = np.float32(2.0) * limit
    for i in range(w.shape[0]):
        state, word = _next(state)
        u = np.float32(word >> _S40) * scale  # the top 24 bits: exact in float32, u in [0, 1)
        w[i] = -limit + width * u
    return state


@numba.njit(fastmath=False)
def _shuffle(order: np.ndarray, state: np.uint64) -> np.uint64:
    """A fresh uniform permutation of 0..n-1 in `order` (Fisher-Yates); returns the new state."""
    n = order.shape[0]
    for i in range(n):
        order[i] = i
    for i in range(n - 1, 0, -1):
        state, word = _next(state)
        # j uniform in [0, i]: multiply-shift of the top 32 bits (Lemire), bias <= (i + 1) / 2**32.
        j = np.int64(((word >> _S32) * np.uint64(i + 1)) >> _S32)
        order[i], order[j] = order[j], order[i]
    return state


@numba.njit(fastmath=False)
def _forward(
    w1: np.ndarray,
    b1: np.ndarray,
    w2t: np.ndarray,
    b2: np.ndarray,
    x: np.ndarray,
    index: np.ndarray,
    start: int,
    count: int,
    xb: np.ndarray,
    ht: np.ndarray,
    logits: np.ndarray,
) -> None:
    """Logits of rows x[index[start:start + count]] into logits (C, B)[:, :count].

    w1 (F, H), b1 (H,), w2t (C, H) (the output weights transposed), b2 (C,). Scratch: xb (F, B)
    the gathered inputs and ht (H, B) the relu activations, batch rows innermost so that both
    layers vectorise over the rows.
    """
    n_in, hidden = N_IN, HIDDEN
    n_cls = N_CLS
    for r in range(count):
        row = index[start + r]
        for k in range(n_in):
            xb[k, r] = x[row, k]
    # Hidden layer h = relu(x W1 + b1): a multiply-add chain over the F inputs, then the bias.
    for j in range(hidden):
        for r in range(count):
            z = xb[0, r] * w1[0, j]
            for k in range(1, n_in):
                z += xb[k, r] * w1[k, j]
            z += b1[j]
            ht[j, r] = z if z > np.float32(0.0) else np.float32(0.0)
    # Output layer logits = h W2 + b2: a multiply-add chain over the H hidden units, then the bias.
    for r in range(count):
        for c in range(n_cls):
            logits[c, r] = ht[0, r] * w2t[c, 0]
    for j in range(1, hidden):
        for r in range(count):
            for c in range(n_cls):
                logits[c, r] += ht[j, r] * w2t[c, j]
    for r in range(count):
        for c in range(n_cls):
            logits[c, r] += b2[c]


@numba.njit(fastmath=False)
def _hidden_rows(w1: np.ndarray, b1: np.ndarray, xb: np.ndarray, count: int, h: np.ndarray) -> None:
    """The hidden activations again as h (B, H), hidden units innermost, for the backward pass.

    The same operations in the same order as in `_forward` (so the same bits as its ht.T):
    recomputing is cheaper than a strided transpose, and every backward loop then runs over H.
    """
    n_in, hidden = N_IN, HIDDEN
    for r in range(count):
        for j in range(hidden):
            z = xb[0, r] * w1[0, j]
            for k in range(1, n_in):
                z += xb[k, r] * w1[k, j]
            z += b1[j]
            h[r, j] = z if z > np.float32(0.0) else np.float32(0.0)


@numba.njit(fastmath=False)
def _loss(
    logits: np.ndarray,
    y: np.ndarray,
    index: np.ndarray,
    start: int,
    count: int,
    dl: np.ndarray,
    with_grad: bool,
) -> tuple[np.float32, int]:
    """(sum of per-row KL(y || softmax(logits)), number of rows with argmax logits == argmax y).

    logits (C, B); targets y[index[start + r]]. With `with_grad`, dl (C, B) receives the gradient
    of the batch MEAN loss with respect to the logits: (softmax - y) / count (targets sum to 1).
    """
    n_cls = N_CLS
    n_rows = np.float32(count)
    loss_sum = np.float32(0.0)
    hits = 0
    for r in range(count):
        row = index[start + r]
        # log softmax_c = l_c - m - log(sum_c' exp(l_c' - m)), m = max_c l_c: no overflow.
        m = logits[0, r]
        guess = 0  # argmax, first index on ties like jnp.argmax
        for c in range(1, n_cls):
            if logits[c, r] > m:
                m = logits[c, r]
                guess = c
        total = np.float32(0.0)
        for c in range(n_cls):
            e = np.exp(logits[c, r] - m)
            dl[c, r] = e
            total += e
        log_total = np.log(total)
        loss = np.float32(0.0)
        label = 0
        for c in range(n_cls):
            t = y[row, c]
            if t > y[row, label]:
                label = c
            if t > np.float32(0.0):  # a zero target contributes exactly 0 (0 log 0 = 0)
                loss -= t * (logits[c, r] - m - log_total)
                if t < np.float32(1.0):  # t log t; skipped for one-hot rows, where it is 0
                    loss += t * np.log(t)
            if with_grad:
                dl[c, r] = (dl[c, r] / total - t) / n_rows
        loss_sum += loss
        hits += guess == label
    return loss_sum, hits


@numba.njit(fastmath=False)
def _backward(
    w2t: np.ndarray,
    xb: np.ndarray,
    h: np.ndarray,
    dl: np.ndarray,
    count: int,
    grads: np.ndarray,
    gw1: np.ndarray,
    gb1: np.ndarray,
    gw2t: np.ndarray,
    gb2: np.ndarray,
) -> None:
    """Gradients of the batch mean loss, from dl = d loss / d logits (C, B), into gw1 (F, H),
    gb1 (H,), gw2t (C, H), gb2 (C,), which are views of the flat `grads`.

    xb (F, B) the batch inputs, h (B, H) its relu activations. Rows are summed in order, one row
    at a time, so the loop over the hidden units is innermost and vectorises.
    """
    n_in, hidden = N_IN, HIDDEN
    n_cls = N_CLS
    for i in range(grads.shape[0]):
        grads[i] = np.float32(0.0)
    for r in range(count):
        for c in range(n_cls):
            gb2[c] += dl[c, r]
        for j in range(hidden):
            # Hidden delta: relu'(z) * (dl W2^T), from the weights before this step's update;
            # h > 0 exactly where z > 0 (relu' = 0 at 0, as in JAX).
            hj = h[r, j]
            d = dl[0, r] * w2t[0, j]
            for c in range(1, n_cls):
                d += dl[c, r] * w2t[c, j]
            for c in range(n_cls):
                gw2t[c, j] += dl[c, r] * hj
            d = d if hj > np.float32(0.0) else np.float32(0.0)
            gb1[j] += d
            for k in range(n_in):
                gw1[k, j] += xb[k, r] * d


@numba.njit(fastmath=False)
def _evaluate(
    w1: np.ndarray,
    b1: np.ndarray,
    w2t: np.ndarray,
    b2: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    ident: np.ndarray,
    batch: int,
    xb: np.ndarray,
    ht: np.ndarray,
    logits: np.ndarray,
    dl: np.ndarray,
) -> tuple[np.float32, np.float32]:
    """Mean loss and accuracy on all of (x, y), in chunks of `batch` rows through the scratch."""
    n = x.shape[0]
    loss_sum = np.float32(0.0)
    hits = 0
    for start in range(0, n, batch):
        count = min(batch, n - start)
        _forward(w1, b1, w2t, b2, x, ident, start, count, xb, ht, logits)
        chunk_loss, chunk_hits = _loss(logits, y, ident, start, count, dl, False)
        loss_sum += chunk_loss
        hits += chunk_hits
    return loss_sum / np.float32(n), np.float32(hits) / np.float32(n)


@numba.njit(fastmath=False)
def _train_one(
    seed: np.uint64,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    epochs: int,
    batch: int,
    learning_rate: np.float32,
    momentum: np.float32,
    limit1: np.float32,
    limit2: np.float32,
    history: np.ndarray,
    final: np.ndarray,
    w1_out: np.ndarray,
    b1_out: np.ndarray,
    w2_out: np.ndarray,
    b2_out: np.ndarray,
) -> None:
    """One run: writes history (4, epochs), final (4,) and the final weights of this seed."""
    n_train = x_train.shape[0]
    n_in, hidden, n_cls = N_IN, HIDDEN, N_CLS
    # Parameters, velocity and gradients each live in one flat buffer [w1 | b1 | w2t | b2], so
    # the momentum step is a single loop; the layer arrays below are views of it.
    o1 = n_in * hidden
    o2 = o1 + hidden
    o3 = o2 + n_cls * hidden
    size = o3 + n_cls
    params = np.zeros(size, np.float32)
    velocity = np.zeros(size, np.float32)  # Keras starts momentum at zero
    grads = np.zeros(size, np.float32)
    w1 = params[:o1].reshape(n_in, hidden)
    b1 = params[o1:o2]  # zero biases
    w2t = params[o2:o3].reshape(n_cls, hidden)
    b2 = params[o3:]
    gw1 = grads[:o1].reshape(n_in, hidden)
    gb1 = grads[o1:o2]
    gw2t = grads[o2:o3].reshape(n_cls, hidden)
    gb2 = grads[o3:]

    state = _mix(seed)  # decorrelates the streams of consecutive seeds
    state = _init_uniform(params[:o1], limit1, state)  # he_uniform W1, row-major (F, H)
    w2 = np.empty((hidden, n_cls), np.float32)  # glorot_uniform W2 drawn row-major (H, C)
    state = _init_uniform(w2.reshape(-1), limit2, state)
    w2t[:, :] = w2.T

    # Per-batch scratch: inputs (F, B), activations (B, H) and (H, B), logits and their
    # gradient (C, B); the epoch's row order (n_train,) and the identity order for evaluation.
    xb = np.empty((n_in, batch), np.float32)
    h = np.empty((batch, hidden), np.float32)
    ht = np.empty((hidden, batch), np.float32)
    logits = np.empty((n_cls, batch), np.float32)
    dl = np.empty((n_cls, batch), np.float32)
    order = np.empty(n_train, np.int64)
    ident = np.arange(max(n_train, x_val.shape[0]))

    for epoch in range(epochs):
        state = _shuffle(order, state)
        loss_sum = np.float32(0.0)
        hits = 0
        for start in range(0, n_train, batch):
            count = min(batch, n_train - start)  # 32, ..., 32, 20: the last batch is ragged
            _forward(w1, b1, w2t, b2, x_train, order, start, count, xb, ht, logits)
            # Running sums with the weights this batch saw (before its update), like Keras.
            batch_loss, batch_hits = _loss(logits, y_train, order, start, count, dl, True)
            loss_sum += batch_loss
            hits += batch_hits
            _hidden_rows(w1, b1, xb, count, h)
            _backward(w2t, xb, h, dl, count, grads, gw1, gb1, gw2t, gb2)
            for i in range(size):  # Keras SGD momentum: v = mu v - lr g; w = w + v
                velocity[i] = momentum * velocity[i] - learning_rate * grads[i]
                params[i] += velocity[i]
        history[0, epoch] = loss_sum / np.float32(n_train)
        history[1, epoch] = np.float32(hits) / np.float32(n_train)
        val_loss, val_accuracy = _evaluate(
            w1, b1, w2t, b2, x_val, y_val, ident, batch, xb, ht, logits, dl
        )
        history[2, epoch] = val_loss
        history[3, epoch] = val_accuracy

    # The tutorial's model.evaluate with the final weights; on the validation set that is the
    # last epoch's validation (same weights, same computation).
    final[0], final[1] = _evaluate(
        w1, b1, w2t, b2, x_train, y_train, ident, batch, xb, ht, logits, dl
    )
    final[2] = history[2, epochs - 1]
    final[3] = history[3, epochs - 1]
    w1_out[:, :] = w1
    b1_out[:] = b1
    w2_out[:, :] = w2t.T
    b2_out[:] = b2


@numba.njit(parallel=True, fastmath=False)
def _train_seeds(
    seeds: np.ndarray,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    epochs: int,
    batch: int,
    learning_rate: np.float32,
    momentum: np.float32,
    limit1: np.float32,
    limit2: np.float32,
    history: np.ndarray,
    final: np.ndarray,
    w1: np.ndarray,
    b1: np.ndarray,
    w2: np.ndarray,
    b2: np.ndarray,
) -> None:
    """All runs, one seed per prange iteration; every run writes only its own output slices."""
    for s in numba.prange(seeds.shape[0]):
        _train_one(
            seeds[s],
            x_train,
            y_train,
            x_val,
            y_val,
            epochs,
            batch,
            learning_rate,
            momentum,
            limit1,
            limit2,
            history[:, s, :],
            final[:, s],
            w1[s],
            b1[s],
            w2[s],
            b2[s],
        )


def train(
    seeds: np.ndarray,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    *,
    epochs: int = 100,
    batch: int = 32,
    learning_rate: float = 0.01,
    momentum: float = 0.9,
) -> dict[str, np.ndarray]:
    """Train one run per seed (integers in [0, 2**64)) on data = (x_train (n, F), y_train (n, C),
    x_val (m, F), y_val (m, C)), float32 with target rows summing to 1.

    Returns HISTORY_KEYS -> (S, epochs), FINAL_KEYS -> (S,), and the final weights w1 (S, F, H),
    b1 (S, H), w2 (S, H, C), b2 (S, C), all float32.
    """
    x_train, y_train, x_val, y_val = data
    for name, array, width in zip(
        ("x_train", "y_train", "x_val", "y_val"), data, (N_IN, N_CLS) * 2, strict=True
    ):
        if array.dtype != np.float32 or array.ndim != 2 or array.shape[1] != width:
            raise ValueError(
                f"{name}: expected float32 (rows, {width}), got {array.dtype} {array.shape}"
            )
    n_seeds, n_in, n_cls, hidden = seeds.shape[0], N_IN, N_CLS, HIDDEN
    history = np.empty((len(HISTORY_KEYS), n_seeds, epochs), np.float32)
    final = np.empty((len(FINAL_KEYS), n_seeds), np.float32)
    w1 = np.empty((n_seeds, n_in, hidden), np.float32)
    b1 = np.empty((n_seeds, hidden), np.float32)
    w2 = np.empty((n_seeds, hidden, n_cls), np.float32)
    b2 = np.empty((n_seeds, n_cls), np.float32)
    _train_seeds(
        seeds.astype(np.uint64),
        x_train,
        y_train,
        x_val,
        y_val,
        epochs,
        batch,
        np.float32(learning_rate),
        np.float32(momentum),
        np.float32(math.sqrt(6.0 / n_in)),  # he_uniform: sqrt(6 / fan_in)
        np.float32(math.sqrt(6.0 / (hidden + n_cls))),  # glorot_uniform: sqrt(6 / (in + out))
        history,
        final,
        w1,
        b1,
        w2,
        b2,
    )
    out = dict(zip(HISTORY_KEYS, history, strict=True))
    out.update(zip(FINAL_KEYS, final, strict=True))
    out.update(w1=w1, b1=b1, w2=w2, b2=b2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,100,1000", help="comma-separated seed counts")
    parser.add_argument("--threads", type=int, default=2, help="numba threads (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per count (best kept)")
    args = parser.parse_args()
    counts = [int(c) for c in args.seeds.split(",")]
    numba.set_num_threads(args.threads)
    data = tutorial_data()

    start = time.perf_counter()
    train(np.arange(2), data)  # compiles every function
    compile_s = time.perf_counter() - start
    print(
        f"numba {numba.__version__} ({numba.threading_layer()} threading layer, "
        f"{numba.get_num_threads()} threads), numpy {np.__version__}, "
        f"python {sys.version.split()[0]}; first call {compile_s:.2f} s"
    )

    result = {}
    for n in counts:
        seeds = np.arange(n)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = train(seeds, data)
            times.append(time.perf_counter() - start)
        best = min(times)
        print(f"numba {n:5d} seeds: {best * 1e3:9.1f} ms  {n / best:7.1f} runs/s", flush=True)

    n = counts[-1]
    if not all(np.isfinite(result[k]).all() for k in HISTORY_KEYS):
        print(f"warning: non-finite values in the history over {n} seeds")
    for split in ("train", "test"):
        acc = result[f"{split}_accuracy"]
        print(f"numba accuracy over {n} seeds, {split}: {acc.mean():.3f} +- {acc.std():.3f}")


if __name__ == "__main__":
    main()
