"""The decision core: typed columns and normalizers, record checks, line facts, the policy's
criteria (``rules``) and the decision assembled from them, batch by batch.

Pure: no file, no run state, no logging. It imports the contract (``pa_batch.schemas``) and
nothing else of the package but ``errors``; import-linter holds it to that.
"""
