"""The test suite's and the bench's oracle: the real tshark, outside both ``tests/`` and ``tracer/``.

``oracle.tshark`` runs tshark and knows which of its outputs differ between the
releases the comparisons accept (4.0 to the current Debian release's 4.4).
"""
