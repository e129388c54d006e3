"""Reference rows found for lines: the row-by-row walk and the join agree on any table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from pa_batch.core import facts
from pa_batch.core.model import ANY_VERSION

ROUTES, KINDS, STRENGTHS = ["oral", "intrathecal"], ["mass", "concentration"], [0.5, 10.0, 20.0]
DAYS = pd.date_range("2024-01-01", periods=6, freq="MS").astype("datetime64[s]").tolist()
maybe_day = st.one_of(st.none(), st.sampled_from(DAYS))

keys = st.lists(
    st.tuples(
        st.sampled_from(ROUTES),
        st.sampled_from(KINDS),
        st.sampled_from(STRENGTHS),
        st.sampled_from(DAYS),
        st.integers(0, 1),
    ),
    min_size=1,
    max_size=30,
    unique=True,
)
rows = st.lists(
    st.tuples(
        st.sampled_from(ROUTES),
        st.sampled_from(KINDS),
        st.sampled_from(STRENGTHS),
        maybe_day,
        maybe_day,
        st.sampled_from([ANY_VERSION, 0, 1]),
    ),
    max_size=25,
)


@settings(max_examples=examples(200), deadline=None)
@given(keys=keys, rows=rows, with_versions=st.booleans())
@pytest.mark.slow
def test_row_by_row_and_join_find_the_same_first_active_row(keys, rows, with_versions):
    distinct = pd.DataFrame(
        keys, columns=["route", "strength_kind", "strength", "service_date", "policy_version"]
    ).astype({"route": "category", "strength_kind": "category"})
    table = pd.DataFrame(rows, columns=["route", "kind", "strength", "start", "end", "version"])
    table = table.astype(
        {"route": "str", "kind": "str", "start": "datetime64[s]", "end": "datetime64[s]"}
    )
    # reference rows numbered out of table order: "first" is the lowest number, not position
    table["reference_row"] = np.random.default_rng(len(rows)).permutation(len(rows)) + 1
    if not with_versions:
        table = table.drop(columns="version")
    by_rows = facts._first_active_row_by_row(distinct, table)
    joined = facts._first_active_joined(distinct, table)
    assert by_rows.tolist() == joined.tolist()
