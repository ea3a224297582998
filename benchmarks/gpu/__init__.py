"""GPU benchmark suite: loss cost, pretraining throughput and stability, Mask R-CNN speed.

Run it through ``benchmarks/gpu_suite.sh`` (or ``python -m benchmarks.gpu STAGE`` from the
repository root). Every stage writes ``STAGE.json`` and ``STAGE.md`` into the output directory
(``benchmarks/results/gpu_suite/`` by default) and keeps finished rows there, so a stage stopped
by a time limit continues where it left off when it is run again. ``--dry-run`` runs every stage
with CPU-sized settings (marked ``dry-run`` in every row) so the suite is exercised in CI.
"""
