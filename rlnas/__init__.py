"""rlnas: reinforcement-learning neural architecture search for Keras, tracked in MLflow.

Importing ``rlnas`` loads neither TensorFlow nor MLflow; they are imported where a child is
built, a controller network is created or a run is tracked. It registers the gymnasium
environment ``rlnas/Architecture-v0`` (gymnasium 1.x has no plugin discovery, so
``import rlnas`` is what makes ``gymnasium.make("rlnas/Architecture-v0")`` work; the
environment's module loads only when one is made).
"""

__version__ = "0.1.0"


def _register_environment() -> None:
    try:
        import gymnasium
    except ImportError:  # pragma: no cover - gymnasium is a dependency
        return
    if "rlnas/Architecture-v0" not in gymnasium.registry:
        gymnasium.register(id="rlnas/Architecture-v0", entry_point="rlnas.envs:ArchitectureEnv")


_register_environment()


def __getattr__(name: str):
    """``rlnas.search(...)``, ``rlnas.final(...)``, ``rlnas.export(...)`` (modules that are
    also the Python entry points, :mod:`rlnas.entry_points`) and ``rlnas.SearchResult``,
    imported on first use."""
    import importlib

    if name in ("search", "final", "export"):
        return importlib.import_module(f"rlnas.{name}")
    if name == "SearchResult":
        return importlib.import_module("rlnas.api_result").SearchResult
    raise AttributeError(f"module 'rlnas' has no attribute {name!r}")
