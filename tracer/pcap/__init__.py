"""Capture-file adapters: read pcap/pcapng into a Trace, write pcapng."""
