"""CSV traps: header rows, pandas index columns, row labels, missing values, ragged rows —
each detected or refused with one line, never read as an extra time step."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probekit.errors import DataWarning, InputFileError, ValidationError
from probekit.io import load_array, load_csv_series, read_csv_table


@pytest.fixture
def series():
    return np.random.default_rng(0).normal(size=(5, 7))


@pytest.mark.parametrize(
    ("write", "dropped"),
    [
        (lambda df, p: df.to_csv(p), True),  # header with an empty index name, index column
        (lambda df, p: df.to_csv(p, header=False), True),  # index column counting the rows
        (lambda df, p: df.to_csv(p, index=False), False),  # header 0,1,2,... only
        (lambda df, p: np.savetxt(p, df.to_numpy(), delimiter=","), False),
        (lambda df, p: df.rename(columns=lambda c: f"t{c}").to_csv(p, index=False), False),
    ],
)
def test_pandas_and_numpy_layouts_read_the_same_series(tmp_path, series, write, dropped):
    path = tmp_path / "s.csv"
    write(pd.DataFrame(series), path)
    if dropped:
        with pytest.warns(DataWarning, match="first column dropped as row labels"):
            x = load_array(path)
    else:
        x = load_array(path)
    assert x.shape == (5, 7, 1)
    np.testing.assert_allclose(x[:, :, 0], series, rtol=1e-12)


def test_index_column_can_be_kept_or_forced(tmp_path, series):
    path = tmp_path / "s.csv"
    pd.DataFrame(series).to_csv(path, header=False)
    assert load_csv_series(path, index_column="keep").shape == (5, 8, 1)
    np.savetxt(path, series, delimiter=",")
    assert load_csv_series(path, index_column="drop").shape == (5, 6, 1)


def test_recording_table_with_dates_and_missing_values(tmp_path):
    path = tmp_path / "co2.csv"
    path.write_text("date,co2,flag\n19580329,316.1,0\n19580405,,1\n19580412,317.5,0\n")
    names, values, dropped = read_csv_table(path, missing=True)
    assert names == ["co2", "flag"] and "named 'date'" in dropped
    assert np.isnan(values[1, 0]) and values[2, 0] == 317.5
    names, values, _ = read_csv_table(path, columns=["co2"], missing=True)
    assert names == ["co2"] and values.shape == (3, 1)
    with pytest.raises(InputFileError, match="line 3, column 2 holds an empty cell"):
        read_csv_table(path)
    text = tmp_path / "dates.csv"
    text.write_text("when,value\n2021-05-01 00:00,1.5\n2021-05-01 00:30,2.5\n")
    names, values, dropped = read_csv_table(text)
    assert names == ["value"] and "not numeric" in dropped


def test_bad_tables_are_one_line_errors(tmp_path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2,3\n4,5\n")
    with pytest.raises(InputFileError, match="line 2 has 2 fields"):
        load_array(ragged)
    words = tmp_path / "words.csv"
    words.write_text("a,b\n1,x\n")
    with pytest.raises(InputFileError, match="'x', not a number"):
        load_array(words)
    with pytest.raises(ValidationError, match="columns must name"):
        read_csv_table(words, columns=["nope"])
    (tmp_path / "h.csv").write_text("a,b\n")
    with pytest.raises(InputFileError, match="no data rows"):
        load_array(tmp_path / "h.csv")
