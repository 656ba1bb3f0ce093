"""The tutorial's Keras script, with the four changes it needs to run on Keras 3.

sklearn's import moved (`sklearn.datasets.samples_generator` -> `sklearn.datasets`), `SGD(lr=)`
became `learning_rate=`, Keras 3 rejects the string 'kullback_leibler_divergence' (we pass
'kl_divergence', the same function), and history keys are 'accuracy'/'val_accuracy'. The figure is
saved instead of shown. Needs tensorflow (or another Keras backend) and keras installed.
"""

import sys

import matplotlib

matplotlib.use("Agg")
from keras.layers import Dense, Input
from keras.models import Sequential
from keras.optimizers import SGD
from keras.utils import to_categorical
from matplotlib import pyplot
from sklearn.datasets import make_blobs

X, y = make_blobs(n_samples=1000, centers=3, n_features=2, cluster_std=2, random_state=2)
y = to_categorical(y)
n_train = 500
trainX, testX = X[:n_train, :], X[n_train:, :]
trainy, testy = y[:n_train], y[n_train:]
model = Sequential()
model.add(Input((2,)))
model.add(Dense(50, activation="relu", kernel_initializer="he_uniform"))
model.add(Dense(3, activation="softmax"))
opt = SGD(learning_rate=0.01, momentum=0.9)
model.compile(loss="kl_divergence", optimizer=opt, metrics=["accuracy"])
history = model.fit(trainX, trainy, validation_data=(testX, testy), epochs=100, verbose=0)
_, train_acc = model.evaluate(trainX, trainy, verbose=0)
_, test_acc = model.evaluate(testX, testy, verbose=0)
print(f"Train: {train_acc:.3f}, Test: {test_acc:.3f}")
pyplot.subplot(211)
pyplot.title("Loss")
pyplot.plot(history.history["loss"], label="train")
pyplot.plot(history.history["val_loss"], label="test")
pyplot.legend()
pyplot.subplot(212)
pyplot.title("Accuracy")
pyplot.plot(history.history["accuracy"], label="train")
pyplot.plot(history.history["val_accuracy"], label="test")
pyplot.legend()
pyplot.savefig(sys.argv[1] if len(sys.argv) > 1 else "keras-tutorial.png")
