"""rlnas: reinforcement-learning neural architecture search for Keras, tracked in MLflow.

Importing ``rlnas`` loads neither TensorFlow nor MLflow; they are imported where a child is
built, a controller network is created or a run is tracked.
"""

__version__ = "0.1.0"
