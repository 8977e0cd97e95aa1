"""The sans-IO analysis core.

Nothing in this package performs I/O or imports scapy, textual, socket,
threading or asyncio (``tests/test_core_purity.py`` enforces it).  It works on
bytes and numpy arrays handed to it and returns plain values, like h11.
"""
