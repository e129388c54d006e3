"""Files in and out: input extracts (``inputs``: CSV and Parquet, read once and hashed as
read), output tables (``tables``) and the atomic commit of a run into its output directory
(``commit``)."""
