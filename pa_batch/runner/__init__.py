"""A run: plan the inputs, execute the batches on an engine (local or Dask), reconcile the
counts, commit; the run state that spans batches (duplicate keys, counters), the operator's
log, and the summaries and report written with the run."""
