"""Check one batch against a contract schema and turn its failures into reject codes.

The schemas (``schemas/claim_extract.py``) are pandera ``DataFrameSchema`` objects: they are
the contract. A batch is checked with the schema's own parts, column by column: the
column's pandera dtype (a mismatch is a reader bug, raised), its nullability and its
``Check`` objects, each evaluated once over the whole column into a mask of failing rows.
``tests/test_validation.py`` holds the result equal to pandera's own
``validate(lazy=True)`` failure cases on generated batches. pandera's ``validate`` is not
called per batch: measured, one call costs 45–65 ms whatever the rows (one row or a hundred,
failing or not), and calling it on the rows that can fail made a 1M-line run 12% (1% powder)
to 30% (all powder) slower, more than all the checks together. It is called once, on an
empty frame, before the first batch: that is how pandera registers the backends a ``Check``
needs to run on a column (pandera 0.30 has none until a schema has validated).

Nothing here formats a cell value: only row positions, columns and check names leave.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.config import ValidationDepth, config_context
from pandera.engines import pandas_engine

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
    _ready(schema, frame)
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
            values = _column_as_contracted(schema, frame, name, column)
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


_READY: set[str] = set()


def _ready(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> None:
    """pandera's own validate, once per schema and process, on no rows (see the module
    docstring): it registers the backends the checks run on."""
    if schema.name in _READY:
        return
    with config_context(validation_enabled=True):
        schema.validate(frame.iloc[:0], lazy=True)
    _READY.add(str(schema.name))


def _column_as_contracted(
    schema: pa.DataFrameSchema, frame: pd.DataFrame, name: str, column: pa.Column
) -> pd.Series:
    """The column, checked present and of the schema's dtype: the readers guarantee both,
    so a failure is a bug, not bad data, and raised as one."""
    if name not in frame:
        raise RuntimeError(f"schema '{schema.name}' failed a structural check")
    values = frame[name]
    if column.dtype is not None and not column.dtype.check(
        pandas_engine.Engine.dtype(values.dtype)
    ):
        raise RuntimeError(f"schema '{schema.name}' failed a structural check")
    return values


def contract_failures_empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "position": pd.Series(dtype="int64"),
            "column": pd.Series(dtype="str"),
            "error_code": pd.Series(dtype="str"),
        }
    )
