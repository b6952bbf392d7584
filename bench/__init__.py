"""Latchkey's benchmarks. ``make bench`` runs them and writes ``bench/report.md``.

Figures live here, never in timed unit tests: a machine's speed varies, a report records it.
"""
