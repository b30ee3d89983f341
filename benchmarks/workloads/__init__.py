"""Benchmark workloads, imported by ``worker.py`` (and by worker processes of the
process backend, which unpickle ``workloads.calls.add``)."""
