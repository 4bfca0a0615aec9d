"""Framework integrations. Each module imports its framework only when it is imported itself:

* ``trainwatch.integrations.lightning.TrainwatchCallback`` (PyTorch Lightning)
* ``trainwatch.integrations.huggingface.TrainwatchCallback`` (Hugging Face ``Trainer``)
* ``trainwatch.integrations.keras.TrainwatchCallback`` (Keras 3, any backend)
* ``trainwatch.integrations.torch`` (plain PyTorch loops: gradient and parameter norms, learning rates)
"""
