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
    # reference: the disk of 60" around the centre, ~pi r^2 pixels centred on its pixel
    cx, cy = target_img.wcs.world_to_pixel(centre)
    r_px = 60 / target_img.pixelscale
    yy, xx = np.nonzero(target_brightstar_mask.data)
    assert abs(len(xx) - np.pi * r_px ** 2) < 2 * r_px
    assert abs(xx.mean() - cx) < 0.1 and abs(yy.mean() - cy) < 0.1
    assert np.all(target_srcmask.data[target_brightstar_mask.data])  # the star mask is kept
    # [9]
    target_bkg = target_img.calculate_bkg(
        target_srcmask=target_srcmask, target_ivpmask=None, is_2D_bkg=True, box_size=256,
        filter_size=5, save=False, verbose=True, visualize=True, save_fig=False)
    target_bkgrms = target_img.calculate_bkgrms_from_propagation(target_bkg=target_bkg)
    # references: the generator's noiseless sky, and the noise model's formula
    from ezphot.datasets import true_sky
    sky = true_sky(target_img.header, target_img.shape)
    # (faint undetected sources stay in the sky level: README, notes on the numbers)
    assert abs(np.median(target_bkg.data - sky)) < 1.0
    assert np.percentile(np.abs(target_bkg.data - sky), 99) < 3
    h = target_bkgrms.header
    g, rn, n = h["EGAIN"], h["RDNOISE"], h["NCOMBINE"]
    assert g == pytest.approx(target_img.egain)
    expected_rms = np.sqrt((np.maximum(target_bkg.data, 0) / g + (rn / g) ** 2) / n)
    np.testing.assert_allclose(target_bkgrms.data, expected_rms, rtol=1e-5)
    # and the pixels' scatter on blank sky agrees with the model (sigma-clipped, 5 %)
    from astropy.stats import sigma_clipped_stats
    resid = np.asarray(target_img.data, float) - target_bkg.data
    _, _, measured = sigma_clipped_stats(resid[~target_srcmask.data], sigma=3)
    assert measured == pytest.approx(np.median(target_bkgrms.data), rel=0.05)
    # [10]
    advanced = aperturephot.sex_photometry(
        target_img=target_img, target_bkg=target_bkg, target_bkgrms=target_bkgrms,
        target_mask=target_brightstar_mask, sex_params=None, detection_sigma=3,
        aperture_diameter_arcsec=[5, 7, 10], aperture_diameter_seeing=[2.5, 3.5],
        saturation_level=60000, kron_factor=2.5, save=False, verbose=False, visualize=True,
        save_fig=False)
    assert 0 < len(advanced.data) < len(target_catalog.data)
    # nothing is detected under the bright-star mask
    ax_, ay_ = np.asarray(advanced.data["X_IMAGE"]), np.asarray(advanced.data["Y_IMAGE"])
    assert np.all(np.hypot(ax_ - cx, ay_ - cy) > r_px - 1)
    # [11] with the maps saved beside each frame (see test_browser_batch_cli for the Pool)
    for img in target_imglist:
        img.calculate_bkg(verbose=False, save=True)
    assert target_img.bkgmap is not None
    target_bkg.save()  # the masked map replaces the quick one, as the user asked
    target_bkgrms.save()
    # what the image reads back is what was saved last (the masked map, not the quick one)
    np.testing.assert_array_equal(target_img.bkgmap.data, target_bkg.data)
    np.testing.assert_array_equal(target_img.bkgrms.data, target_bkgrms.data)
    assert target_imglist[1].bkgmap is not None
    # [12]
    star = target_catalog.data[np.argmax(np.where(target_catalog.data["FLAGS"] == 0,
                                                  target_catalog.data["FLUX_AUTO"], 0))]
    point_source = dict(ra=float(star["ALPHA_J2000"]), dec=float(star["DELTA_J2000"]),
                        radius_arcsec=5)
    fig, ax = target_img.show_position(x=point_source['ra'], y=point_source['dec'],
                                       radius_arcsec=5, coord_type='coord',
                                       zoom_radius_pixel=200, scale='zscale')
    # reference: astropy's WCS puts the star at (sx, sy); the cut-out holds the frame's pixels
    # around it, the circle has 5" / pixel scale of radius
    from matplotlib.patches import Circle, Ellipse
    sx, sy = target_img.wcs.all_world2pix(point_source['ra'], point_source['dec'], 0)
    (mx,), (my,) = ax.lines[0].get_data()
    assert (mx, my) == (pytest.approx(float(sx), abs=1e-6), pytest.approx(float(sy), abs=1e-6))
    assert abs(float(sx) - float(star["X_IMAGE"])) < 0.05
    (circle,) = [pt for pt in ax.patches if isinstance(pt, Circle)]
    assert circle.center == (pytest.approx(float(sx)), pytest.approx(float(sy)))
    assert circle.radius == pytest.approx(5 / target_img.pixelscale)
    x0, y0 = max(0, int(sx) - 200), max(0, int(sy) - 200)
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()),
                                  np.asarray(target_img.data[y0:int(sy) + 201,
                                                             x0:int(sx) + 201]))
    # [13] [15]
    target_catalog_circular = aperturephot.circular_photometry(
        target_img=target_img, x_arr=point_source['ra'], y_arr=point_source['dec'],
        aperture_diameter_arcsec=[5, 7, 10], aperture_diameter_seeing=[2.5, 3.5], unit='coord',
        target_bkg=target_img.bkgmap, target_mask=None, target_bkgrms=target_img.bkgrms,
        save=False, verbose=False, visualize=True, save_fig=False)
    row = target_catalog_circular.data[0]
    assert row["FLAGS"] == 0 and row["FLUX_APER_2"] > row["FLUX_APER"] > 0
    assert row["FLUX_APER_2"] == pytest.approx(star["FLUX_APER_2"], rel=0.03)
    # reference: photutils' aperture_photometry at the star's pixel position on image - map
    from photutils.aperture import CircularAperture, EllipticalAperture, aperture_photometry
    resid = np.asarray(target_img.data, float) - np.asarray(target_img.bkgmap.data, float)
    px, py = target_img.wcs.all_world2pix(point_source['ra'], point_source['dec'], 0)
    diam = target_catalog_circular.meta["aperture_diameter_pixel"]
    np.testing.assert_allclose(diam[:3], np.array([5, 7, 10]) / target_img.pixelscale)
    names = ["FLUX_APER", "FLUX_APER_1", "FLUX_APER_2", "FLUX_APER_3"]
    for d, name in zip(diam, names, strict=False):
        ref = aperture_photometry(resid, CircularAperture((px, py), r=d / 2))["aperture_sum"]
        assert row[name] == pytest.approx(float(ref[0]), rel=1e-5), name
    # [16] [17]
    extended_source = dict(ra=point_source['ra'], dec=point_source['dec'], radius_arcsec=5,
                           a=5.85, b=2.909, theta=56.6)
    fig, ax = target_img.show_position(x=extended_source['ra'], y=extended_source['dec'],
                                       radius_arcsec=extended_source['radius_arcsec'],
                                       a_arcsec=extended_source['a'],
                                       b_arcsec=extended_source['b'],
                                       theta_deg=extended_source['theta'], downsample=1,
                                       coord_type='coord', zoom_radius_pixel=200,
                                       scale='zscale')
    (ellipse,) = [pt for pt in ax.patches if type(pt) is Ellipse]  # (a Circle is one too)
    assert ellipse.width == pytest.approx(2 * 5.85 / target_img.pixelscale, rel=1e-3)
    assert ellipse.height == pytest.approx(2 * 2.909 / target_img.pixelscale, rel=1e-3)
    target_catalog_ellip = aperturephot.elliptical_photometry(
        target_img=target_img, x_arr=extended_source['ra'], y_arr=extended_source['dec'],
        sma_arr=extended_source['a'], smi_arr=extended_source['b'],
        theta_arr=extended_source['theta'], unit='coord', target_bkg=target_img.bkgmap,
        target_mask=None, target_bkgrms=target_img.bkgrms, save=False, verbose=False,
        visualize=True, save_fig=False)
    erow = target_catalog_ellip.data[0]
    assert erow["FLUX_ELIP"] > 0
    # reference: the semi-axes in pixels, the position angle east of north as THETA_IMAGE
    # (north up, east left on this frame: 90 + PA), and photutils' EllipticalAperture
    assert erow["SMA_IMAGE"] == pytest.approx(5.85 / target_img.pixelscale, rel=1e-3)
    assert erow["SMI_IMAGE"] == pytest.approx(2.909 / target_img.pixelscale, rel=1e-3)
    # (within 1 deg: at Dec -77 north turns by ~0.3 deg across the frame)
    assert (erow["THETA_IMAGE"] - (90 + 56.6) + 90) % 180 - 90 == pytest.approx(0, abs=1)
    ref = aperture_photometry(resid, EllipticalAperture(
        (erow["X_IMAGE"], erow["Y_IMAGE"]), erow["SMA_IMAGE"], erow["SMI_IMAGE"],
        theta=np.radians(erow["THETA_IMAGE"])))["aperture_sum"]
    assert erow["FLUX_ELIP"] == pytest.approx(float(ref[0]), rel=1e-5)
    assert target_catalog_ellip.info.target_img == str(target_img.path)
