"""`Catalog.write` exports: ECSV and Parquet keep units, dtypes, the info and the provenance;
CSV keeps names and values only (documented); Parquet without pyarrow is an ezphot error."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from astropy.table import Table

from ezphot.dataobjects import CatalogInfo
from ezphot.exceptions import EzphotError, MissingDependencyError
from ezphot.methods import AperturePhotometry


@pytest.fixture(scope="module")
def catalog(frame):
    cat = AperturePhotometry().sex_photometry(
        frame[0], detection_sigma=5, aperture_diameter_arcsec=[5, 7],
        save=False, visualize=False, verbose=False)
    assert len(cat) > 50 and cat.meta.get("sextractor_version")
    return cat


def _same_columns(back: Table, table: Table, *, dtypes: bool = True) -> None:
    assert back.colnames == table.colnames
    for name in table.colnames:
        assert back[name].unit == table[name].unit, name
        if dtypes:
            assert back[name].dtype == table[name].dtype, name
        np.testing.assert_array_equal(np.asarray(back[name]), np.asarray(table[name]),
                                      err_msg=name)


@pytest.mark.parametrize("fmt", ["ecsv", "parquet"])
def test_round_trip_keeps_units_info_and_provenance(catalog, tmp_path, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    path = catalog.write(tmp_path / f"x.{fmt}", format=fmt)
    back = Table.read(path, format={"ecsv": "ascii.ecsv"}.get(fmt, fmt))
    _same_columns(back, catalog.data)
    assert any(back[name].unit is not None for name in back.colnames)  # units to compare
    assert back.meta["ezphot_info"] == catalog.info.to_dict()
    info = CatalogInfo.from_dict(back.meta["ezphot_info"])
    assert str(info) == str(catalog.info)
    assert back.meta["ezphot_meta"]["sextractor_version"] == catalog.meta["sextractor_version"]
    for key, value in catalog.data.meta.items():  # the table's own meta (pixel_origin...)
        assert back.meta[key] == value, key
    # the export leaves the catalogue itself as it was
    assert "ezphot_info" not in catalog.data.meta


def test_csv_keeps_names_and_values_only(catalog, tmp_path):
    path = catalog.write(tmp_path / "x.csv", format="csv")
    header = path.read_text().splitlines()[0]
    assert header.split(",") == catalog.data.colnames  # no unit, no metadata line
    back = Table.read(path, format="ascii.csv")
    assert not back.meta
    assert all(back[name].unit is None for name in back.colnames)
    for name in catalog.data.colnames:
        np.testing.assert_allclose(np.asarray(back[name], float),
                                   np.asarray(catalog.data[name], float), rtol=1e-6,
                                   err_msg=name)


def test_parquet_without_pyarrow_is_an_ezphot_error(catalog, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    path = tmp_path / "x.parquet"
    with pytest.raises(MissingDependencyError, match=r"x\.parquet: .*pyarrow.*ezphot\[parquet\]"):
        catalog.write(path, format="parquet")
    assert issubclass(MissingDependencyError, EzphotError)
    assert issubclass(MissingDependencyError, ImportError)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
