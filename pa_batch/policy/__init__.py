"""The policy as data: versioned definitions (``definition``), the reference files
(``reference``) and the ICD-10-CM billable code set (``icd10cm``), loaded and validated into
the core's tables. The shipped defaults are in ``data/``."""
