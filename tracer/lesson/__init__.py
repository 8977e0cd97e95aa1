"""Teaching with a trace: its steps (``steps``), and the quiz drawn from them (``quiz``)."""
