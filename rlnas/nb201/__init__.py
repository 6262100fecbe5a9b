"""NAS-Bench-201 (Dong & Yang, ICLR 2020) in rlnas: the cell, its table and its benchmark.

* :mod:`rlnas.nb201.vocabulary` — operations, edges, data set names, the cell's string;
* :mod:`rlnas.nb201.table` — the shipped table of all 15,625 cells (``data/``), loaded and
  checked once per process;
* :mod:`rlnas.nb201.space` — the ``nb201`` search space (six edge decisions);
* :mod:`rlnas.nb201.evaluator` — the evaluator that looks a cell up instead of training it;
* :mod:`rlnas.nb201.bench` and :mod:`rlnas.nb201.command` — ``rlnas bench nb201``, the
  strategies compared over many seeds.

None of these imports TensorFlow; only the command's MLflow record loads MLflow.
"""
