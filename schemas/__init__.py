"""The data contract of pa_batch: the claim extract it reads and the files it writes.

In an installed package this directory is ``pa_batch.schemas`` (see ``pyproject.toml``).
"""
