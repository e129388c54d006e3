"""Reading committed runs: the history of an output directory (``history``), what changed
between two runs (``diff``), and why a claim got its outcome (``explain``). Reads what runs
wrote and kept; never re-decides, never imports the run machinery."""
