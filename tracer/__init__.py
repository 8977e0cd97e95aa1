"""tracer: a packet-level protocol visualiser and TCP/UDP handshake tracer.

The analysis core (``tracer.core``) is sans-IO; adapters around it read and write
capture files (``tracer.pcap``), export results (``tracer.export``) and drive the
command line (``tracer.cli``).
"""

__version__ = "0.1.0"
