"""The sans-IO analysis core.

Nothing in this package performs I/O or keeps process-wide state: it imports only
``tracer.core``, numpy and a short list of pure stdlib modules, and names nothing
that prints, opens files, reads clocks or randomness, or imports dynamically
(``tests/test_core_purity.py`` enforces it).  It works on bytes and numpy arrays
handed to it and returns plain values, like h11.
"""
