"""The ladder: the one view of a trace that the terminal UI, the text ladder, the
lessons and the exporters all draw (docs/architecture.md).

It depends on ``tracer.core`` alone (plus numpy): ``model`` (which rows, in what
order, one row's cells), ``filter`` (the ``/`` filter words), ``labels`` (every
ladder word in English and Simplified Chinese), ``text`` (terminal widths,
padding, wrapping, clipping, arrows), ``calls`` (a socket call as a row's text),
``streams`` (a stream's lanes, the streams of a call's socket) and ``render``
(the text ladder).
"""
