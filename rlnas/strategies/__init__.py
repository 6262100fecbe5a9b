"""Search strategies behind one ``ask()``/``tell()`` interface."""

from rlnas.strategies.base import SeenTrie, SpaceExhausted, Strategy, StrategyFault
from rlnas.strategies.random_search import RandomSearch

__all__ = ["RandomSearch", "SeenTrie", "SpaceExhausted", "Strategy", "StrategyFault"]
