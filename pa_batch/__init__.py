"""pa_batch: prior-approval decisions for compounded baclofen powder pharmacy claims.

The library (``pa_batch.run``, ``decide_frame``, ``explain``, ``diff``, ``runs``; see
``pa_batch.api``) and the ``pa-batch`` command over it. Importing it changes nothing in the
process: no allocator, logging or warning setting.
"""

from pa_batch.api import (
    RunError,
    RunResult,
    decide_frame,
    diff,
    explain,
    run,
    runs,
)
from pa_batch.version import __version__

__all__ = ["RunError", "RunResult", "__version__", "decide_frame", "diff", "explain", "run", "runs"]
