"""The tutorial page, cell by cell, as a user types it (positions moved onto our sample field)."""

from __future__ import annotations

import numpy as np
import pytest

from ezphot.datasets import FrameSpec, make_frame


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ezphot_data")
    for i, tel in enumerate(["7DT14", "7DT16"]):
        spec = FrameSpec(shape=(1200, 1600), telname=tel, star_density=3,
                         obsdate=f"2025-09-06T02:5{i}:55")
        make_frame(spec=spec, seed=5, noise_seed=i, root=root / "scidata")
    return root


def test_tutorial(data_root, monkeypatch, capsys):
    monkeypatch.setenv("EZPHOT_DATA_DIR", str(data_root))
    # [1]
    from ezphot.utils import DataBrowser
    dbrowser = DataBrowser('scidata')
    dbrowser.objname = 'T00528'
    dbrowser.filter = 'm600'
    target_imgset = dbrowser.search('*100.fits', return_type='science')
    target_imglist = target_imgset.target_images
    assert len(target_imglist) == 2
    # [2]
    target_img = target_imglist[0]
    fig, ax = target_img.show('coord')
    assert ax.get_title() == target_img.path.name
    # [3]
    from ezphot.methods import AperturePhotometry
    aperturephot = AperturePhotometry()
    aperturephot.help()
    assert "- sex_photometry(" in capsys.readouterr().out
    # [4]
    target_catalog = aperturephot.sex_photometry(
        target_img=target_img, target_bkg=None, target_bkgrms=None, target_mask=None,
        sex_params=None, detection_sigma=3, aperture_diameter_arcsec=[5, 7, 10],
        aperture_diameter_seeing=[2.5, 3.5], saturation_level=60000, kron_factor=2.5,
        save=False, verbose=False, visualize=True, save_fig=False)
    # [5] [6] [7]
    assert str(target_catalog.info).startswith("Info ====")
    assert (target_catalog.info.exptime, target_catalog.info.filter) == (100.0, 'm600')
    assert target_catalog.info.telname == '7DT14' and target_catalog.info.objname == 'T00528'
    assert len(target_catalog.data) > 50 and "MAG_APER_4" in target_catalog.data.colnames
    # [8]
    centre = target_img.center
    target_brightstar_mask = target_img.calculate_circularmask(
        target_srcmask=None, x_position=centre.ra.deg, y_position=centre.dec.deg,
        radius_arcsec=60, unit='coord', save=False, verbose=True, visualize=True,
        save_fig=False)
    target_srcmask = target_img.calculate_sourcemask(
        target_srcmask=target_brightstar_mask, sigma=5, mask_radius_factor=2,
        saturation_level=50000, save=False, verbose=True, visualize=True, save_fig=False)
    assert target_srcmask.data.sum() > target_brightstar_mask.data.sum()
    # [9]
    target_bkg = target_img.calculate_bkg(
        target_srcmask=target_srcmask, target_ivpmask=None, is_2D_bkg=True, box_size=256,
        filter_size=5, save=False, verbose=True, visualize=True, save_fig=False)
    target_bkgrms = target_img.calculate_bkgrms_from_propagation(target_bkg=target_bkg)
    # [10]
    advanced = aperturephot.sex_photometry(
        target_img=target_img, target_bkg=target_bkg, target_bkgrms=target_bkgrms,
        target_mask=target_brightstar_mask, sex_params=None, detection_sigma=3,
        aperture_diameter_arcsec=[5, 7, 10], aperture_diameter_seeing=[2.5, 3.5],
        saturation_level=60000, kron_factor=2.5, save=False, verbose=False, visualize=True,
        save_fig=False)
    assert 0 < len(advanced.data) < len(target_catalog.data)
    # [11] with the maps saved beside each frame (see test_browser_batch_cli for the Pool)
    for img in target_imglist:
        img.calculate_bkg(verbose=False, save=True)
    assert target_img.bkgmap is not None
    target_bkg.save()  # the masked map replaces the quick one, as the user asked
    target_bkgrms.save()
    # [12]
    star = target_catalog.data[np.argmax(np.where(target_catalog.data["FLAGS"] == 0,
                                                  target_catalog.data["FLUX_AUTO"], 0))]
    point_source = dict(ra=float(star["ALPHA_J2000"]), dec=float(star["DELTA_J2000"]),
                        radius_arcsec=5)
    target_img.show_position(x=point_source['ra'], y=point_source['dec'], radius_arcsec=5,
                             coord_type='coord', zoom_radius_pixel=200, scale='zscale')
    # [13] [15]
    target_catalog_circular = aperturephot.circular_photometry(
        target_img=target_img, x_arr=point_source['ra'], y_arr=point_source['dec'],
        aperture_diameter_arcsec=[5, 7, 10], aperture_diameter_seeing=[2.5, 3.5], unit='coord',
        target_bkg=target_img.bkgmap, target_mask=None, target_bkgrms=target_img.bkgrms,
        save=False, verbose=False, visualize=True, save_fig=False)
    row = target_catalog_circular.data[0]
    assert row["FLAGS"] == 0 and row["FLUX_APER_2"] > row["FLUX_APER"] > 0
    assert row["FLUX_APER_2"] == pytest.approx(star["FLUX_APER_2"], rel=0.03)
    # [16] [17]
    extended_source = dict(ra=point_source['ra'], dec=point_source['dec'], radius_arcsec=5,
                           a=5.85, b=2.909, theta=56.6)
    target_img.show_position(x=extended_source['ra'], y=extended_source['dec'],
                             radius_arcsec=extended_source['radius_arcsec'],
                             a_arcsec=extended_source['a'], b_arcsec=extended_source['b'],
                             theta_deg=extended_source['theta'], downsample=1,
                             coord_type='coord', zoom_radius_pixel=200, scale='zscale')
    target_catalog_ellip = aperturephot.elliptical_photometry(
        target_img=target_img, x_arr=extended_source['ra'], y_arr=extended_source['dec'],
        sma_arr=extended_source['a'], smi_arr=extended_source['b'],
        theta_arr=extended_source['theta'], unit='coord', target_bkg=target_img.bkgmap,
        target_mask=None, target_bkgrms=target_img.bkgrms, save=False, verbose=False,
        visualize=True, save_fig=False)
    assert target_catalog_ellip.data["FLUX_ELIP"][0] > 0
    assert target_catalog_ellip.info.target_img == str(target_img.path)
