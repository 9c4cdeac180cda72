"""Manifold's benchmarks: every figure a ratio to calling the backend directly, in one run.

    make bench                          # = .venv/bin/python -m bench
    .venv/bin/python -m bench --only core,health

Everything runs on 127.0.0.1. Each process the benchmark starts (echo servers,
`manifold serve`, the bare-client script) runs in a process group of its own
and is stopped by that group. Sample counts are modest (a few hundred calls
per latency figure) so the whole run fits in a few minutes on a 2-core machine;
read the ratios, not the absolute times.
"""
