"""Run a contract schema over one batch and turn pandera's failure cases into reject codes.

pandera's exception text embeds cell values, so it is never printed or logged: only the
structured failure cases are read, and only row positions, columns and check names leave.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.config import ValidationDepth, config_context
from pandera.errors import SchemaErrors

from pa_batch.schemas.claim_extract import (
    INPUT_COLUMNS,
    MISSING_REQUIRED_VALUE,
    PANDERA_NOT_NULLABLE,
    REJECT_CODES,
)
from pa_batch.typed import flagged_column

FAILURE_COLUMNS = ["position", "column", "error_code"]


def contract_failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per failed check: ``position`` (the row's index label), column, error code.

    Batches carry their row position as the index label, so a subset of a batch reports
    positions in the whole batch. A failed flag column (``ndc__invalid``) is reported against
    its input column. Rows come back ordered by position, then by input column and check
    order.
    """
    if frame.empty:
        return contract_failures_empty()
    # the reject logic is the product, not an optional check: pandera's environment
    # switches (PANDERA_VALIDATION_ENABLED, PANDERA_VALIDATION_DEPTH) must not turn it off
    with config_context(
        validation_enabled=True,
        validation_depth=ValidationDepth.SCHEMA_AND_DATA,
        cache_dataframe=False,
        keep_cached_dataframe=False,
    ):
        # Every check is row-wise, so pandera reports the same failures on the rows that
        # can fail as on the whole batch: those with a missing value in a non-nullable
        # column or a check that does not pass, found with the schema's own Check objects.
        # That spares pandera's fixed cost per column on the records that pass, nearly all.
        frame = frame[_rows_that_can_fail(schema, frame)]
        if frame.empty:
            return contract_failures_empty()
        try:
            schema.validate(frame, lazy=True)
        except SchemaErrors as errors:
            cases = errors.failure_cases
        else:
            return contract_failures_empty()
    code = cases["check"].astype("str").replace({PANDERA_NOT_NULLABLE: MISSING_REQUIRED_VALUE})
    unexpected = ~code.isin(list(REJECT_CODES))
    if unexpected.any():
        # a dtype or column failure means the reader broke the contract: a bug, not bad data
        raise RuntimeError(f"schema '{schema.name}' failed a structural check")
    column = cases["column"].astype("str").map(flagged_column)
    failures = pd.DataFrame(
        {
            "position": cases["index"].astype("int64").to_numpy(),
            "column": column.to_numpy(),
            "error_code": code.to_numpy(),
            "_order": range(len(cases)),
        }
    )
    column_order = {name: i for i, name in enumerate(INPUT_COLUMNS)}
    failures["_column_order"] = failures["column"].map(column_order)
    failures = failures.sort_values(["position", "_column_order", "_order"], kind="stable")
    return failures[FAILURE_COLUMNS].drop_duplicates().reset_index(drop=True)


def _rows_that_can_fail(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> np.ndarray:
    can_fail = np.zeros(len(frame), dtype=bool)
    for name, column in schema.columns.items():
        if name not in frame:  # pandera reports the missing column: a structural failure
            return np.ones(len(frame), dtype=bool)
        values = frame[name]
        if not column.nullable:
            can_fail |= values.isna().to_numpy()
        for check in column.checks:
            passed = check(values).check_output
            can_fail |= ~passed.fillna(False).to_numpy(dtype=bool)
    return can_fail


def contract_failures_empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "position": pd.Series(dtype="int64"),
            "column": pd.Series(dtype="str"),
            "error_code": pd.Series(dtype="str"),
        }
    )
