"""The two table formats, named once: inputs are read and outputs written in either."""

from typing import Final

CSV: Final = "csv"
PARQUET: Final = "parquet"
