"""Check one batch against a contract schema and turn its failures into reject codes.

The schemas (``schemas/claim_extract.py``) are pandera ``DataFrameSchema`` objects: they are
the contract, and only pandera's public API reads them:

* **structure** (every column present, of the schema's dtype) by the schema's own
  ``validate``, on no rows, once per process for each set of column dtypes a reader hands
  over (a failure is a reader bug, raised, never turned into rejects). That first validate
  is also how pandera registers the backends a ``Check`` runs on (pandera 0.30 has none
  until a schema has validated);
* **data**, column by column: its nullability, and each of its ``Check`` objects called on
  the whole column (``Check.__call__``, in pandera's API reference) into a mask of failing
  rows.

``tests/test_validation.py`` holds the result equal to pandera's own ``validate(lazy=True)``
failure cases on generated batches. ``validate`` is not called on the rows themselves:
measured (pandera 0.30, this 2-core machine), one call on the record schema costs 27 ms on
no rows and 28–42 ms with a failing row, even narrowed to the eight columns that can fail
and to the failing rows; a batch's masks cost about 1 ms. With a failing record in most
98,304-row batches that is ~3 s more on a 10M-line extract, and earlier measurement put it
at 12% (1% powder) to 30% (all powder) of a 1M-line run.

Nothing here formats a cell value: only row positions, columns and check names leave.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.config import ValidationDepth, config_context

from pa_batch.core.typed import flagged_column
from pa_batch.schemas.claim_extract import INPUT_COLUMNS, MISSING_REQUIRED_VALUE, REJECT_CODES

FAILURE_COLUMNS = ["position", "column", "error_code"]
_COLUMN_ORDER = {name: i for i, name in enumerate(INPUT_COLUMNS)}


def contract_failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per failed check: ``position`` (the row's index label), column, error code.

    Batches carry their row position as the index label, so a subset of a batch reports
    positions in the whole batch. A failed flag column (``ndc__invalid``) is reported against
    its input column. Rows come back ordered by position, then by input column, then as
    pandera orders them (schema column, missing value before the column's checks).
    """
    if frame.empty:
        return contract_failures_empty()
    _check_structure(schema, frame)
    positions = frame.index.to_numpy()
    found: list[pd.DataFrame] = []
    # the reject logic is the product, not an optional check: pandera's environment
    # switches (PANDERA_VALIDATION_ENABLED, PANDERA_VALIDATION_DEPTH) must not turn it off
    with config_context(
        validation_enabled=True,
        validation_depth=ValidationDepth.SCHEMA_AND_DATA,
        cache_dataframe=False,
        keep_cached_dataframe=False,
    ):
        for column_number, (name, column) in enumerate(schema.columns.items()):
            values = frame[name]
            failed_checks = []
            if not column.nullable:
                failed_checks.append((MISSING_REQUIRED_VALUE, values.isna().to_numpy()))
            for check in column.checks:
                passed = check(values).check_output.fillna(False).to_numpy(dtype=bool)
                failed_checks.append((check.name, ~passed))
            for check_number, (code, failed) in enumerate(failed_checks):
                if not failed.any():
                    continue
                if code not in REJECT_CODES and code != MISSING_REQUIRED_VALUE:
                    raise RuntimeError(f"schema '{schema.name}' has a check without a code")
                reported = flagged_column(name)
                found.append(
                    pd.DataFrame(
                        {
                            "position": positions[failed].astype("int64"),
                            "column": reported,
                            "error_code": code,
                            "_column_order": _COLUMN_ORDER.get(reported, len(_COLUMN_ORDER)),
                            "_order": column_number * 1000 + check_number,
                        }
                    )
                )
    if not found:
        return contract_failures_empty()
    failures = pd.concat(found, ignore_index=True).sort_values(
        ["position", "_column_order", "_order"], kind="stable"
    )
    return failures[FAILURE_COLUMNS].drop_duplicates().reset_index(drop=True)


_STRUCTURES_CHECKED: set[tuple] = set()


def _check_structure(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> None:
    """pandera's own validate on no rows of ``frame``, once per schema and set of column
    dtypes (see the module docstring): the readers guarantee the structure, so a failure is
    a bug, not bad data, and raised as one."""
    structure = (schema.name, tuple(frame.columns), tuple(map(str, frame.dtypes)))
    if structure in _STRUCTURES_CHECKED:
        return
    with config_context(validation_enabled=True):
        try:
            schema.validate(frame.iloc[:0], lazy=True)
        except pa.errors.SchemaErrors as errors:
            raise RuntimeError(f"schema '{schema.name}' failed a structural check") from errors
    _STRUCTURES_CHECKED.add(structure)


def contract_failures_empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "position": pd.Series(dtype="int64"),
            "column": pd.Series(dtype="str"),
            "error_code": pd.Series(dtype="str"),
        }
    )
