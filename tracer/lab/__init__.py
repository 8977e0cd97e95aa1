"""Live-lab adapters: network namespaces, capture, call recording."""
