"""Exporters: the JSON contract and the text ladder."""
