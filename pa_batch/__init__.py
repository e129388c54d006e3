"""pa_batch: prior-approval decisions for compounded baclofen powder claim lines."""

__version__ = "0.1.0"
