"""A tiny Keras fit (KERAS_BACKEND chooses the backend; the tests use torch) reporting to trainwatch."""

import keras
import numpy as np

from trainwatch.integrations.keras import TrainwatchCallback


def main():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=8, epochs=2, validation_split=0.2, verbose=0,
              callbacks=[TrainwatchCallback(batch_size=8, project="integration", throughput_interval=0.0, gpu="off")])


if __name__ == "__main__":
    main()
