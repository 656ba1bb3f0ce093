"""The tutorial experiment in scikit-learn, for timing beside `kldiv run`.

MLPClassifier with the tutorial's model and optimiser (2-50-3 relu, SGD 0.01, momentum 0.9 without
Nesterov, batch 32, no L2), one `partial_fit` pass per epoch followed by validation on the test half
(loss and accuracy), 100 epochs, then the tutorial's figure saved as PNG. Prints Train/Test accuracy.

    python tutorial_sklearn.py OUT.png [SPLIT.npz]

With SPLIT.npz (x_train, y_train, x_test, y_test; integer labels), the same model and schedule
train on that split instead of the blobs: `bench_peers.py` writes the split `kldiv run --data
digits` trains on, so both learn the same rows.
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier


def main(out: str, split: str | None = None) -> None:
    if split is None:
        x, y = make_blobs(n_samples=1000, centers=3, n_features=2, cluster_std=2, random_state=2)
        train_x, test_x, train_y, test_y = x[:500], x[500:], y[:500], y[500:]
    else:
        with np.load(split, allow_pickle=False) as f:
            train_x, train_y, test_x, test_y = (
                f[k] for k in ("x_train", "y_train", "x_test", "y_test")
            )
    model = MLPClassifier(
        hidden_layer_sizes=(50,),
        solver="sgd",
        learning_rate_init=0.01,
        momentum=0.9,
        nesterovs_momentum=False,
        batch_size=32,
        alpha=0.0,
        random_state=0,
    )
    history = {"loss": [], "val_loss": [], "accuracy": [], "val_accuracy": []}
    classes = np.unique(np.concatenate([train_y, test_y]))
    for _ in range(100):
        model.partial_fit(train_x, train_y, classes=classes)
        history["loss"].append(model.loss_)
        history["accuracy"].append(model.score(train_x, train_y))
        history["val_loss"].append(log_loss(test_y, model.predict_proba(test_x), labels=classes))
        history["val_accuracy"].append(model.score(test_x, test_y))
    print(f"Train: {model.score(train_x, train_y):.3f}, Test: {model.score(test_x, test_y):.3f}")
    fig = plt.figure()
    for i, (title, key) in enumerate([("Loss", "loss"), ("Accuracy", "accuracy")]):
        ax = fig.add_subplot(2, 1, i + 1)
        ax.set_title(title)
        ax.plot(history[key], label="train")
        ax.plot(history["val_" + key], label="test")
        ax.legend()
    fig.savefig(out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sklearn-tutorial.png", *sys.argv[2:3])
