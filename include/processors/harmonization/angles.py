"""Sun and view angles of a scene on a regular grid in its map projection.

Sources:
- **Sentinel-2** ``MTD_TL.xml`` (or the AWS ``metadata.xml``): ``Sun_Angles_Grid`` and, per band
  and detector, ``Viewing_Incidence_Angles_Grids``, 5 km apart, node (0, 0) at the tile's upper-left
  corner (``ULX``, ``ULY``). Each detector grid is NaN outside that detector's footprint; the
  detectors of a band are combined by averaging their view vectors where they overlap, and the
  nodes no detector sees (outside the swath) are filled by a least-squares plane through the view
  vector components of the seen nodes (a linear extrapolation across track).
- **Landsat Collection 2** angle bands (``SZA``, ``SAA``, ``VZA``, ``VAA``: int16, hundredths of a
  degree, band 4's geometry), read decimated to a coarse grid.
- **Landsat** ``ANG.txt`` (USGS angle coefficient file): the per-band rational polynomials are
  evaluated on a coarse grid of L1T lines/samples as the USGS tools do per pixel (trace the point
  to the raw L1R image, then evaluate the satellite and sun vector polynomials there), at the
  scene's mean height (no DEM). Landsat 8/9 OLI files trace through one polynomial per SCA
  (``l8_angles``, averaging overlapping SCAs); Landsat 4-7 TM/ETM+ files through one polynomial
  per scan direction of the mirror (``landsat_angles``).
- Otherwise (an ANG.txt without rational polynomials): the scene-centre sun angles of the MTL on
  the whole scene and a nadir view (view zenith 0), an approximation named in
  ``AngleGrid.source``.

Interpolation to a band's pixels is bilinear, separable and windowed, on the view vector
components ``(tan z sin a, tan z cos a)`` (smooth across nadir, where the azimuth flips by 180
degrees) and on ``(sin a, cos a)`` for the sun azimuth (no wrap at 0/360).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioError

from include.common.errors import FieldProblem, InvalidInputError
from include.processors.harmonization.metadata import (
    S2_BAND_IDS,
    LandsatFacts,
    find_local,
    iter_local,
    parse_ang,
    parse_xml,
)

FloatArray = npt.NDArray[np.float64]

ALL_BANDS = "*"
"""The view-grid key used when one view geometry stands for every band."""
LANDSAT_NODE_STEP_PX = 33
"""Node spacing (L1T pixels) of grids evaluated from ANG.txt or decimated angle bands (~1 km)."""


@dataclass(frozen=True, slots=True)
class GridGeometry:
    """A regular grid of nodes: node (row i, col j) is at ``(x0 + j dx, y0 - i dy)``."""

    x0: float
    y0: float
    dx: float
    dy: float
    rows: int
    cols: int


@dataclass(frozen=True, slots=True)
class PixelAngles:
    """Angles (degrees, float32) at the pixel centres of one window."""

    sun_zenith: npt.NDArray[np.float32]
    sun_azimuth: npt.NDArray[np.float32]
    view_zenith: npt.NDArray[np.float32]
    view_azimuth: npt.NDArray[np.float32]


@dataclass(frozen=True)
class AngleGrid:
    """Sun and per-band view angles (degrees) on a regular grid of a projected CRS."""

    geometry: GridGeometry
    crs: str
    """The grid's CRS, e.g. ``EPSG:32631``."""
    sun_zenith: FloatArray
    sun_azimuth: FloatArray
    view_zenith: Mapping[str, FloatArray]
    view_azimuth: Mapping[str, FloatArray]
    source: str
    """Where the angles come from, in words (kept in the output metadata)."""
    mean_sun: tuple[float, float] | None = None
    """The scene's published mean (zenith, azimuth), when the metadata gives one."""
    mean_view: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """The published per-band mean view (zenith, azimuth), when the metadata gives them."""
    view_seen: Mapping[str, npt.NDArray[np.bool_]] = field(default_factory=dict)
    """Per band, the nodes the metadata gave values for (the others were extrapolated)."""

    def view_key(self, band: str) -> str:
        """Return the key of ``band``'s view grid (the band itself or ``*``).

        Raises:
            KeyError: naming the bands that have view grids.
        """
        if band in self.view_zenith:
            return band
        if ALL_BANDS in self.view_zenith:
            return ALL_BANDS
        raise KeyError(
            f"no view angles for band {band}; the grid has {', '.join(sorted(self.view_zenith))}"
        )

    def scene_sun_zenith(self) -> float:
        """Return the scene's sun zenith: the published mean, else the grid mean."""
        if self.mean_sun is not None:
            return self.mean_sun[0]
        return float(np.mean(self.sun_zenith))

    def refined(self, factor: int) -> AngleGrid:
        """Return this grid with ``factor`` times denser nodes, interpolated as pixels are.

        Used to evaluate nonlinear functions of the angles (the c-factor) on a finer grid than
        the metadata's before interpolating them to pixels.
        """
        if factor <= 1:
            return self
        g = self.geometry
        rows, cols = (g.rows - 1) * factor + 1, (g.cols - 1) * factor + 1
        dx, dy = g.dx / factor, g.dy / factor
        transform = Affine(dx, 0.0, g.x0 - dx / 2, 0.0, -dy, g.y0 + dy / 2)
        interp = self.interpolator(transform, 0, 0, rows, cols)
        sun_az = np.radians(self.sun_azimuth)
        view_zenith: dict[str, FloatArray] = {}
        view_azimuth: dict[str, FloatArray] = {}
        for key in self.view_zenith:
            x, y = view_components(self.view_zenith[key], self.view_azimuth[key])
            view_zenith[key], view_azimuth[key] = angles_from_components(interp(x), interp(y))
        seen = {
            key: np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)[:rows, :cols]
            for key, mask in self.view_seen.items()
        }
        return replace(
            self,
            geometry=GridGeometry(x0=g.x0, y0=g.y0, dx=dx, dy=dy, rows=rows, cols=cols),
            sun_zenith=interp(self.sun_zenith),
            sun_azimuth=np.mod(
                np.degrees(np.arctan2(interp(np.sin(sun_az)), interp(np.cos(sun_az)))), 360.0
            ),
            view_zenith=view_zenith,
            view_azimuth=view_azimuth,
            view_seen=seen,
        )

    def interpolator(
        self, transform: Affine, row_off: int, col_off: int, height: int, width: int
    ) -> WindowInterpolator:
        """Return a bilinear interpolator from the nodes to a window's pixel centres.

        Args:
            transform: the band raster's affine transform (north-up, no rotation).
            row_off: the window's first row.
            col_off: the window's first column.
            height: the window's rows.
            width: the window's columns.

        Raises:
            InvalidInputError: when the raster is rotated.
        """
        if transform.b != 0 or transform.d != 0:
            raise InvalidInputError(
                FieldProblem(
                    "files", "the raster is rotated", "give north-up rasters (UTM tiles/scenes)"
                )
            )
        g = self.geometry
        xs = transform.c + (col_off + np.arange(width, dtype=np.float64) + 0.5) * transform.a
        ys = transform.f + (row_off + np.arange(height, dtype=np.float64) + 0.5) * transform.e
        return WindowInterpolator.build((g.y0 - ys) / g.dy, (xs - g.x0) / g.dx, g.rows, g.cols)

    def pixel_angles(
        self, band: str, transform: Affine, row_off: int, col_off: int, height: int, width: int
    ) -> PixelAngles:
        """Return the sun and ``band``'s view angles at the pixel centres of a window.

        Raises:
            KeyError: when the grid has no view angles for ``band``.
        """
        interp = self.interpolator(transform, row_off, col_off, height, width)
        key = self.view_key(band)
        view_x, view_y = view_components(self.view_zenith[key], self.view_azimuth[key])
        vx, vy = interp(view_x), interp(view_y)
        sun_az = np.radians(self.sun_azimuth)
        sx, sy = interp(np.sin(sun_az)), interp(np.cos(sun_az))
        view_zenith, view_azimuth = angles_from_components(vx, vy)
        return PixelAngles(
            sun_zenith=interp(self.sun_zenith).astype(np.float32),
            sun_azimuth=np.degrees(np.arctan2(sx, sy)).astype(np.float32),
            view_zenith=view_zenith.astype(np.float32),
            view_azimuth=view_azimuth.astype(np.float32),
        )


@dataclass(frozen=True, slots=True)
class WindowInterpolator:
    """Separable bilinear interpolation of a node grid at fixed fractional row/col positions.

    Interpolating is two small matrix products, ``W_rows @ nodes @ W_cols.T``, with at most two
    non-zero weights per pixel row/column: BLAS does it in a few milliseconds per megapixel.
    Positions outside the grid take the edge value (the grids cover their tile or scene).
    """

    row_weights: FloatArray
    """(window rows, node rows in ``rows``) weights."""
    col_weights: FloatArray
    """(window cols, node cols in ``cols``) weights."""
    rows: slice
    cols: slice

    @classmethod
    def build(
        cls, row_pos: FloatArray, col_pos: FloatArray, rows: int, cols: int
    ) -> WindowInterpolator:
        """Precompute the weights for fractional node positions."""
        row_weights, row_slice = _weights(row_pos, rows)
        col_weights, col_slice = _weights(col_pos, cols)
        return cls(row_weights=row_weights, col_weights=col_weights, rows=row_slice, cols=col_slice)

    def __call__(self, nodes: FloatArray, dtype: type[np.floating[Any]] = np.float64) -> Any:
        """Return the node values interpolated at the window's pixels, shape (rows, cols).

        Args:
            nodes: the grid's node values.
            dtype: the result's float type (float32 halves the memory traffic).
        """
        sub = np.asarray(nodes, dtype=dtype)[self.rows, self.cols]
        rows_first = self.row_weights.astype(dtype, copy=False) @ sub
        return rows_first @ self.col_weights.astype(dtype, copy=False).T


def _weights(pos: FloatArray, size: int) -> tuple[FloatArray, slice]:
    index, frac = _axis(pos, size)
    lo = int(index.min())
    hi = min(int(index.max()) + 2, size)
    weights = np.zeros((pos.size, hi - lo))
    lines = np.arange(pos.size)
    np.add.at(weights, (lines, index - lo), 1.0 - frac)
    if hi - lo > 1:
        np.add.at(weights, (lines, np.minimum(index - lo + 1, hi - lo - 1)), frac)
    return weights, slice(lo, hi)


def _axis(pos: FloatArray, size: int) -> tuple[npt.NDArray[np.intp], FloatArray]:
    if size < 2:
        return np.zeros(pos.shape, dtype=np.intp), np.zeros(pos.shape)
    clipped = np.clip(pos, 0.0, size - 1.0)
    index = np.minimum(np.floor(clipped).astype(np.intp), size - 2)
    return index, clipped - index


# --------------------------------------------------------------------------- vector helpers


def view_components(zenith: FloatArray, azimuth: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Return ``(tan z sin a, tan z cos a)``: the view direction's ground-plane components."""
    tan_z = np.tan(np.radians(zenith))
    az = np.radians(azimuth)
    return tan_z * np.sin(az), tan_z * np.cos(az)


def angles_from_components(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Return (zenith, azimuth in 0..360) degrees from ``view_components``."""
    zenith = np.degrees(np.arctan(np.hypot(x, y)))
    azimuth = np.mod(np.degrees(np.arctan2(x, y)), 360.0)
    return zenith, azimuth


def fill_plane(values: FloatArray) -> FloatArray:
    """Return ``values`` with NaN nodes filled by a least-squares plane through the others.

    Raises:
        ValueError: when no node is finite.
    """
    finite = np.isfinite(values)
    if finite.all():
        return values
    if not finite.any():
        raise ValueError("no finite node to extrapolate from")
    grid_index = np.indices(values.shape)
    rows, cols = grid_index[0], grid_index[1]
    if finite.sum() < 3:
        filled = values.copy()
        filled[~finite] = float(values[finite].mean())
        return filled
    design = np.column_stack([np.ones(finite.sum()), cols[finite], rows[finite]])
    coef, *_ = np.linalg.lstsq(design, values[finite], rcond=None)
    plane = coef[0] + coef[1] * cols + coef[2] * rows
    filled_plane: FloatArray = np.where(finite, values, plane)
    return filled_plane


def _fill_angles(zenith: FloatArray, azimuth: FloatArray) -> tuple[FloatArray, FloatArray]:
    x, y = view_components(zenith, azimuth)
    return angles_from_components(fill_plane(x), fill_plane(y))


def _fill_sun(zenith: FloatArray, azimuth: FloatArray) -> tuple[FloatArray, FloatArray]:
    az = np.radians(azimuth)
    sin_a, cos_a = fill_plane(np.sin(az)), fill_plane(np.cos(az))
    return fill_plane(zenith), np.mod(np.degrees(np.arctan2(sin_a, cos_a)), 360.0)


# --------------------------------------------------------------------------- Sentinel-2


def _values_grid(element: Any, where: str) -> tuple[FloatArray, float, float]:
    """Parse ``<COL_STEP><ROW_STEP><Values_List><VALUES>...`` into (grid, col_step, row_step)."""
    col_step = find_local(element, "COL_STEP")
    row_step = find_local(element, "ROW_STEP")
    lines = [v.text or "" for v in iter_local(element, "VALUES")]
    if col_step is None or row_step is None or not lines:
        raise InvalidInputError(
            FieldProblem(where, "an angle grid lacks COL_STEP/ROW_STEP/VALUES", "give MTD_TL.xml")
        )
    try:
        grid = np.array([[float(v) for v in line.split()] for line in lines], dtype=np.float64)
        return grid, float(col_step.text or "nan"), float(row_step.text or "nan")
    except ValueError as err:
        raise InvalidInputError(
            FieldProblem(
                where, f"an angle grid is not a table of numbers: {err}", "give MTD_TL.xml"
            )
        ) from err


def read_s2_tile_angles(path: Path) -> AngleGrid:
    """Read a Sentinel-2 tile's sun and per-band view angle grids from ``MTD_TL.xml``.

    Args:
        path: ``MTD_TL.xml`` of a L1C/L2A granule, or the equivalent AWS ``metadata.xml``.

    Returns:
        The angle grid with one view grid per band present (``B01``..``B12``, ``B8A``).

    Raises:
        InvalidInputError: the file lacks the tile geocoding or the sun grid, or a grid is not
            a rectangular table of numbers.
    """
    where = f"files[{path.name}]"
    root = parse_xml(path)
    crs_element = find_local(root, "HORIZONTAL_CS_CODE")
    crs_text = crs_element.text if crs_element is not None else None
    ulx = uly = None
    for position in iter_local(root, "Geoposition"):
        ulx_el, uly_el = find_local(position, "ULX"), find_local(position, "ULY")
        if ulx_el is not None and uly_el is not None:
            ulx, uly = float(ulx_el.text or "nan"), float(uly_el.text or "nan")
            break
    sun = find_local(root, "Sun_Angles_Grid")
    if not crs_text or ulx is None or uly is None or sun is None:
        raise InvalidInputError(
            FieldProblem(
                where,
                "has no HORIZONTAL_CS_CODE, Geoposition ULX/ULY or Sun_Angles_Grid",
                "give the granule's MTD_TL.xml (Level-1C or Level-2A tile metadata)",
            )
        )
    zen_el, az_el = find_local(sun, "Zenith"), find_local(sun, "Azimuth")
    if zen_el is None or az_el is None:
        raise InvalidInputError(
            FieldProblem(where, "Sun_Angles_Grid lacks Zenith/Azimuth", "give MTD_TL.xml")
        )
    sun_zen, col_step, row_step = _values_grid(zen_el, where)
    sun_az, _, _ = _values_grid(az_el, where)
    if sun_zen.shape != sun_az.shape or sun_zen.ndim != 2:
        raise InvalidInputError(
            FieldProblem(where, "the sun grids differ in shape", "give an unmodified MTD_TL.xml")
        )
    sums: dict[str, tuple[FloatArray, FloatArray, FloatArray]] = {}
    for grids in iter_local(root, "Viewing_Incidence_Angles_Grids"):
        band_id = grids.get("bandId", "")
        if not band_id.isdigit() or int(band_id) >= len(S2_BAND_IDS):
            continue
        band = S2_BAND_IDS[int(band_id)]
        v_zen_el, v_az_el = find_local(grids, "Zenith"), find_local(grids, "Azimuth")
        if v_zen_el is None or v_az_el is None:
            continue
        zen, _, _ = _values_grid(v_zen_el, where)
        az, _, _ = _values_grid(v_az_el, where)
        if zen.shape != sun_zen.shape or az.shape != sun_zen.shape:
            raise InvalidInputError(
                FieldProblem(
                    where,
                    f"the view grid of band {band} detector {grids.get('detectorId')} is "
                    f"{zen.shape}, not {sun_zen.shape}",
                    "give an unmodified MTD_TL.xml",
                )
            )
        x, y = view_components(zen, az)
        seen = np.isfinite(x) & np.isfinite(y)
        sx, sy, count = sums.get(band, (np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)))
        sums[band] = (
            sx + np.where(seen, x, 0.0),
            sy + np.where(seen, y, 0.0),
            count + seen,
        )
    view_zenith: dict[str, FloatArray] = {}
    view_azimuth: dict[str, FloatArray] = {}
    view_seen: dict[str, npt.NDArray[np.bool_]] = {}
    for band, (sx, sy, count) in sums.items():
        if not count.any():
            continue
        view_seen[band] = count > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_x = np.where(count > 0, sx / np.maximum(count, 1), np.nan)
            mean_y = np.where(count > 0, sy / np.maximum(count, 1), np.nan)
        view_zenith[band], view_azimuth[band] = angles_from_components(
            fill_plane(mean_x), fill_plane(mean_y)
        )
    sun_zen_filled, sun_az_filled = _fill_sun(sun_zen, sun_az)
    mean_sun = None
    mean_sun_el = find_local(root, "Mean_Sun_Angle")
    if mean_sun_el is not None:
        z, a = find_local(mean_sun_el, "ZENITH_ANGLE"), find_local(mean_sun_el, "AZIMUTH_ANGLE")
        if z is not None and a is not None and z.text and a.text:
            mean_sun = (float(z.text), float(a.text))
    mean_view: dict[str, tuple[float, float]] = {}
    for element in iter_local(root, "Mean_Viewing_Incidence_Angle"):
        band_id = element.get("bandId", "")
        z, a = find_local(element, "ZENITH_ANGLE"), find_local(element, "AZIMUTH_ANGLE")
        if (
            band_id.isdigit()
            and int(band_id) < len(S2_BAND_IDS)
            and z is not None
            and a is not None
        ):
            mean_view[S2_BAND_IDS[int(band_id)]] = (float(z.text or "nan"), float(a.text or "nan"))
    return AngleGrid(
        geometry=GridGeometry(
            x0=ulx, y0=uly, dx=col_step, dy=row_step, rows=sun_zen.shape[0], cols=sun_zen.shape[1]
        ),
        crs=crs_text.strip().upper(),
        sun_zenith=sun_zen_filled,
        sun_azimuth=sun_az_filled,
        view_zenith=view_zenith,
        view_azimuth=view_azimuth,
        source=f"{path.name}: Sentinel-2 5 km sun/view angle grids (detectors combined)",
        mean_sun=mean_sun,
        mean_view=mean_view,
        view_seen=view_seen,
    )


# --------------------------------------------------------------------------- Landsat ANG.txt
#
# Both layouts of the USGS angle coefficient file have FILE_HEADER, PROJECTION, EPHEMERIS,
# SOLAR_VECTOR and one RPC_BANDnn group per band, with the same satellite and sun vector
# polynomials (BANDnn_MEAN_SAT_VECTOR, BANDnn_SAT_X/Y/Z_NUM_COEF (10) and _DEN_COEF (9), the same
# for SUN). They differ in how an L1T point is traced back to the raw (L1R) image:
# - OLI (Landsat 8/9; USGS l8_angles, ias_angle_gen_read_ang.c): one L1T->L1R polynomial per
#   sensor chip (BANDnn_SCA_LIST, BANDnn_SCAnn_*); SCA k's L1R samples follow k SCA widths.
# - TM/ETM+ (Landsat 4-7; USGS landsat_angles, gxx_angle_gen_read_ang.c and
#   gxx_angle_gen_find_dir.c in USGS-EROS/espa-product-formatter, fork BeamIO-Inc/
#   espa-product-formatter@547af82 raw_binary/per_pixel_angles_libs/landsat_ias_lib): one
#   polynomial per scan direction of the whiskbroom mirror (BANDnn_NUMBER_OF_DIRECTIONS,
#   BANDnn_LINES_PER_SCAN, BANDnn_DIRnn_*); FILE_HEADER adds WRS_PATH, WRS_ROW, MODE,
#   FIRST_SCAN_DIRECTION and SPACECRAFT_ID is "L4_TM"/"L5_TM"/"L7_ETM"; a SCAN_TIME_POLY group is
#   added; BAND_LIST is (1, 2, 3, 4, 5, 6, 7) for TM and (1, 2, 3, 4, 5, 61, 62, 7, 8) for ETM+,
#   61/62 being band 6 VCID 1/2 (groups RPC_BAND61, RPC_BAND62).

ETM_THERMAL_BANDS = (61, 62)
"""ETM+ band 6 in the angle file: VCID 1 (low gain) and VCID 2 (high gain)."""
THERMAL_BAND = 6


@dataclass(frozen=True, slots=True)
class _Rational:
    numerator: FloatArray
    denominator: FloatArray


@dataclass(frozen=True, slots=True)
class _ImageModel:
    """An L1T->L1R rational polynomial: one OLI SCA's, or one TM/ETM+ scan direction's."""

    mean_height: float
    l1r_mean: tuple[float, float]
    l1t_mean: tuple[float, float]
    line: _Rational
    samp: _Rational


@dataclass(frozen=True, slots=True)
class _BandModel:
    number: int
    l1t_lines: int
    l1t_samps: int
    l1r_lines: int
    l1r_samps: int
    pixel_size: float
    mean_height: float
    l1r_mean: tuple[float, float]
    l1t_mean: tuple[float, float]
    sat_mean: tuple[float, float, float]
    sun_mean: tuple[float, float, float]
    sat: tuple[_Rational, _Rational, _Rational]
    sun: tuple[_Rational, _Rational, _Rational]
    scas: tuple[_ImageModel, ...] = ()
    """OLI: the SCAs, in SCA_LIST order."""
    directions: tuple[_ImageModel, ...] = ()
    """TM/ETM+: the scan directions (DIR00 images the even scans, DIR01 the odd ones)."""
    lines_per_scan: int = 0
    """TM/ETM+: L1R lines one mirror sweep images (the band's detector count)."""


def _floats(group: Mapping[str, Any], key: str, count: int, where: str) -> tuple[float, ...]:
    value = group.get(key)
    values = value if isinstance(value, tuple) else (value,)
    if value is None or len(values) != count:
        raise InvalidInputError(
            FieldProblem(
                where, f"{key} must hold {count} numbers", "give the scene's unmodified ANG.txt"
            )
        )
    return tuple(float(v) for v in values)


def _integer(group: Mapping[str, Any], key: str, where: str) -> int:
    return int(_floats(group, key, 1, where)[0])


def _pair(group: Mapping[str, Any], key: str, where: str) -> tuple[float, float]:
    a, b = _floats(group, key, 2, where)
    return a, b


def _triple(group: Mapping[str, Any], key: str, where: str) -> tuple[float, float, float]:
    a, b, c = _floats(group, key, 3, where)
    return a, b, c


def _rational(
    group: Mapping[str, Any], prefix: str, n_num: int, where: str, den_prefix: str | None = None
) -> _Rational:
    return _Rational(
        numerator=np.array(_floats(group, f"{prefix}_NUM_COEF", n_num, where)),
        denominator=np.array(_floats(group, f"{den_prefix or prefix}_DEN_COEF", n_num - 1, where)),
    )


def _vector_model(
    group: Mapping[str, Any], prefix: str, where: str
) -> tuple[_Rational, _Rational, _Rational]:
    """Read ``<prefix>_X/Y/Z_NUM_COEF`` (10 terms) and ``_DEN_COEF`` (9 terms)."""
    return (
        _rational(group, f"{prefix}_X", 10, where),
        _rational(group, f"{prefix}_Y", 10, where),
        _rational(group, f"{prefix}_Z", 10, where),
    )


def _image_model(group: Mapping[str, Any], prefix: str, where: str) -> _ImageModel:
    """Read ``<prefix>MEAN_HEIGHT``, ``MEAN_L1R/L1T_LINE_SAMP``, ``LINE_*`` and ``SAMP_*``."""
    # The USGS TM/ETM+ reader (gxx_angle_gen_read_ang.c) reads LINE_DEN_COEF for the sample
    # denominator too; an angle file without SAMP_DEN_COEF is read the same way.
    samp_den = f"{prefix}SAMP" if f"{prefix}SAMP_DEN_COEF" in group else f"{prefix}LINE"
    return _ImageModel(
        mean_height=_floats(group, f"{prefix}MEAN_HEIGHT", 1, where)[0],
        l1r_mean=_pair(group, f"{prefix}MEAN_L1R_LINE_SAMP", where),
        l1t_mean=_pair(group, f"{prefix}MEAN_L1T_LINE_SAMP", where),
        line=_rational(group, f"{prefix}LINE", 5, where),
        samp=_rational(group, f"{prefix}SAMP", 5, where, den_prefix=samp_den),
    )


def _sca_models(group: Mapping[str, Any], p: str, where: str) -> tuple[_ImageModel, ...]:
    scas = group.get(f"{p}SCA_LIST", ())
    numbers = scas if isinstance(scas, tuple) else (scas,)
    return tuple(_image_model(group, f"{p}SCA{int(sca):02d}_", where) for sca in numbers)


def _direction_models(group: Mapping[str, Any], p: str, where: str) -> tuple[_ImageModel, ...]:
    count = _integer(group, f"{p}NUMBER_OF_DIRECTIONS", where)
    return tuple(_image_model(group, f"{p}DIR{index:02d}_", where) for index in range(count))


def _band_model(group: Mapping[str, Any], number: int, where: str) -> _BandModel:
    """Read one RPC_BANDnn group, OLI (per SCA) or TM/ETM+ (per scan direction)."""
    p = f"BAND{number:02d}_"
    is_scanner = f"{p}NUMBER_OF_DIRECTIONS" in group
    scas = () if is_scanner else _sca_models(group, p, where)
    directions = _direction_models(group, p, where) if is_scanner else ()
    lines_per_scan = _integer(group, f"{p}LINES_PER_SCAN", where) if is_scanner else 0
    if not scas and not directions:
        raise InvalidInputError(
            FieldProblem(
                where,
                f"RPC_BAND{number:02d} has neither {p}SCA_LIST (OLI) nor scan directions "
                f"{p}NUMBER_OF_DIRECTIONS (TM/ETM+), or they are empty",
                "give the scene's unmodified ANG.txt",
            )
        )
    if is_scanner and lines_per_scan < 1:
        raise InvalidInputError(
            FieldProblem(where, f"{p}LINES_PER_SCAN must be >= 1", "give an unmodified ANG.txt")
        )
    return _BandModel(
        number=number,
        l1t_lines=_integer(group, f"{p}NUM_L1T_LINES", where),
        l1t_samps=_integer(group, f"{p}NUM_L1T_SAMPS", where),
        l1r_lines=_integer(group, f"{p}NUM_L1R_LINES", where),
        l1r_samps=_integer(group, f"{p}NUM_L1R_SAMPS", where),
        pixel_size=_floats(group, f"{p}PIXEL_SIZE", 1, where)[0],
        mean_height=_floats(group, f"{p}MEAN_HEIGHT", 1, where)[0],
        l1r_mean=_pair(group, f"{p}MEAN_L1R_LINE_SAMP", where),
        l1t_mean=_pair(group, f"{p}MEAN_L1T_LINE_SAMP", where),
        sat_mean=_triple(group, f"{p}MEAN_SAT_VECTOR", where),
        sun_mean=_triple(group, f"{p}MEAN_SUN_VECTOR", where),
        sat=_vector_model(group, f"{p}SAT", where),
        sun=_vector_model(group, f"{p}SUN", where),
        scas=scas,
        directions=directions,
        lines_per_scan=lines_per_scan,
    )


def _sum_of_terms(
    constant: float, coefficients: FloatArray, factors: list[tuple[FloatArray | float, ...]]
) -> FloatArray:
    """Return ``constant + c0 * f0... + c1 * f1... + ...``, added and multiplied left to right."""
    total: Any = constant
    for coefficient, term_factors in zip(coefficients, factors, strict=True):
        term: Any = coefficient
        for factor in term_factors:
            term = term * factor
        total = total + term
    result: FloatArray = total
    return result


def _vector_value(
    terms: _Rational,
    mean: float,
    line: FloatArray,
    samp: FloatArray,
    r_line: FloatArray,
    r_samp: FloatArray,
    height: float,
) -> FloatArray:
    """Evaluate one vector component's rational polynomial (offset coordinates)."""
    factors: list[tuple[FloatArray | float, ...]] = [
        (line,),
        (samp,),
        (height,),
        (r_line,),
        (line, line),
        (samp, line),
        (samp, samp),
        (r_samp, r_line, r_line),
        (r_line, r_line, r_line),
    ]
    numerator = _sum_of_terms(terms.numerator[0], terms.numerator[1:], factors)
    factors[5] = (line, samp)  # the denominator's own order: the same values to the last bit
    denominator = _sum_of_terms(1.0, terms.denominator, factors)
    result: FloatArray = mean + numerator / denominator
    return result


def _image_rpc(
    terms: _Rational, mean: float, dl: FloatArray, ds: FloatArray, dh: float
) -> FloatArray:
    """Evaluate an L1T->L1R rational polynomial (offset coordinates)."""
    n, d = terms.numerator, terms.denominator
    value: FloatArray = (n[0] + n[1] * dl + n[2] * ds + n[3] * dh + n[4] * dl * ds) / (
        1.0 + d[0] * dl + d[1] * ds + d[2] * dh + d[3] * dl * ds
    ) + mean
    return value


def _to_l1r(
    model: _ImageModel, band: _BandModel, lines: FloatArray, samps: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Return the L1R (line, sample) ``model`` traces L1T points to, at the band's mean height."""
    dl = lines - model.l1t_mean[0]
    ds = samps - model.l1t_mean[1]
    dh = band.mean_height - model.mean_height
    return (
        _image_rpc(model.line, model.l1r_mean[0], dl, ds, dh),
        _image_rpc(model.samp, model.l1r_mean[1], dl, ds, dh),
    )


_L1rPoints = tuple[npt.NDArray[np.intp], FloatArray, FloatArray]
"""(point indices, L1R line, swath L1R sample) of the points one SCA or scan direction sees."""


def _sca_l1r_points(band: _BandModel, lines: FloatArray, samps: FloatArray) -> list[_L1rPoints]:
    """OLI: per SCA, the points inside its L1R frame (USGS ``l8_angles``).

    A point is in SCA k when k's polynomial puts it at 0 <= sample <= samples - 1 and
    0 <= line < lines; its swath sample is then k SCA widths further.
    """
    points: list[_L1rPoints] = []
    for index, sca in enumerate(band.scas):
        r_line, r_samp = _to_l1r(sca, band, lines, samps)
        inside = (r_samp >= 0) & (r_samp <= band.l1r_samps - 1) & (r_line >= 0)
        inside &= r_line < band.l1r_lines
        where = np.flatnonzero(inside)
        if where.size:
            points.append((where, r_line[where], r_samp[where] + index * band.l1r_samps))
    return points


def _scan_l1r_points(band: _BandModel, lines: FloatArray, samps: FloatArray) -> list[_L1rPoints]:
    """TM/ETM+: per scan direction, the points it imaged (USGS ``gxx_angle_gen_find_dir``).

    Direction d sees a point when its polynomial lands inside the L1R frame
    (0 < line < lines, 0 < sample < samples) on a scan of its own (``int(line /
    LINES_PER_SCAN) % 2 == d``); when both do, the later direction is used, as USGS does. A
    point inside the frame that no direction claims (between two scans, SLC-off wedges) is
    traced through the first direction landing inside the frame; the USGS tool evaluates those
    at L1R (0, 0) instead, the start of the scene, which says nothing about the point.
    """
    chosen = np.full(lines.shape, -1, dtype=np.intp)
    nearest = np.full(lines.shape, -1, dtype=np.intp)
    traced: list[tuple[FloatArray, FloatArray]] = []
    for index, direction in enumerate(band.directions):
        r_line, r_samp = _to_l1r(direction, band, lines, samps)
        inside = (r_line > 0) & (r_line < band.l1r_lines) & (r_samp > 0)
        inside &= r_samp < band.l1r_samps
        scan = np.floor(np.where(inside, r_line, 0.0) / band.lines_per_scan)
        chosen[inside & (np.mod(scan, 2) == index)] = index
        nearest[inside & (nearest < 0)] = index
        traced.append((r_line, r_samp))
    chosen = np.where(chosen >= 0, chosen, nearest)
    points: list[_L1rPoints] = []
    for index, (r_line, r_samp) in enumerate(traced):
        where = np.flatnonzero(chosen == index)
        if where.size:
            points.append((where, r_line[where], r_samp[where]))
    return points


def _band_angles(
    band: _BandModel, lines: FloatArray, samps: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, npt.NDArray[np.intp]]:
    """Return (sun zen, sun az, view zen, view az, SCA count) at L1T (line, samp) points.

    As the USGS tools: each point is traced to the L1R image through the SCA(s) (OLI) or the
    scan direction (TM/ETM+) that saw it; the satellite and sun vector polynomials are
    evaluated there and averaged over the (at most two, overlapping) OLI SCAs. Points nothing
    sees (outside the imaged area) are NaN.
    """
    shape = lines.shape
    lines, samps = lines.ravel(), samps.ravel()
    sat_sum = np.zeros((3, lines.size))
    sun_sum = np.zeros((3, lines.size))
    count = np.zeros(lines.size, dtype=np.intp)
    off_line = lines - band.l1t_mean[0]
    off_samp = samps - band.l1t_mean[1]
    tracer = _scan_l1r_points if band.directions else _sca_l1r_points
    for where, r_line, r_samp in tracer(band, lines, samps):
        rl = r_line - band.l1r_mean[0]
        rs = r_samp - band.l1r_mean[1]
        ol, os_ = off_line[where], off_samp[where]
        for axis in range(3):
            sat_sum[axis, where] += _vector_value(
                band.sat[axis], band.sat_mean[axis], ol, os_, rl, rs, 0.0
            )
            sun_sum[axis, where] += _vector_value(
                band.sun[axis], band.sun_mean[axis], ol, os_, rl, rs, 0.0
            )
        count[where] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        sat = sat_sum / np.where(count > 0, count, np.nan)
        sun = sun_sum / np.where(count > 0, count, np.nan)

    def to_angles(vec: FloatArray) -> tuple[FloatArray, FloatArray]:
        norm = np.sqrt((vec**2).sum(axis=0))
        zenith = np.degrees(np.arccos(np.clip(vec[2] / norm, -1.0, 1.0)))
        azimuth = np.mod(np.degrees(np.arctan2(vec[0], vec[1])), 360.0)
        return zenith.reshape(shape), azimuth.reshape(shape)

    sun_zen, sun_az = to_angles(sun)
    view_zen, view_az = to_angles(sat)
    return sun_zen, sun_az, view_zen, view_az, count.reshape(shape)


def _band_group(
    groups: Mapping[str, Mapping[str, Any]], number: int, where: str
) -> tuple[Mapping[str, Any], int]:
    """Return band ``number``'s RPC group and the number the file gives it.

    ETM+ files band 6 twice, as 61 and 62 (VCID 1 and 2, one detector geometry): band 6 is
    read from RPC_BAND61 there.

    Raises:
        InvalidInputError: the file has no group for the band.
    """
    candidates = (number, *ETM_THERMAL_BANDS) if number == THERMAL_BAND else (number,)
    for candidate in candidates:
        group = groups.get(f"RPC_BAND{candidate:02d}")
        if group is not None:
            return group, candidate
    header = groups.get("FILE_HEADER", {})
    raise InvalidInputError(
        FieldProblem(
            where,
            f"has no RPC_BAND{number:02d} group (bands: {header.get('BAND_LIST')})",
            "give the ANG.txt of the same scene as the bands",
        )
    )


def read_landsat_ang(
    path: Path,
    bands: tuple[int, ...],
    *,
    step_px: int = LANDSAT_NODE_STEP_PX,
    mtl: LandsatFacts | None = None,
) -> AngleGrid:
    """Evaluate a Landsat ``ANG.txt`` on a coarse grid: sun angles and per-band view angles.

    The USGS rational polynomials (OLI: per SCA; TM/ETM+: per scan direction) are evaluated at
    nodes ``step_px`` reference-band L1T pixels apart (node (0, 0) is L1T line/sample (0, 0),
    the centre of the upper left pixel at ``UL_CORNER``; band 4 is the reference, and a band of
    another pixel size, such as the 15 m pan band, is evaluated at the same ground positions);
    nodes outside the imaged area are extrapolated. Files without rational polynomials fall
    back to ``scene_center_grid`` (needs ``mtl``).

    Args:
        path: the scene's ``_ANG.txt``.
        bands: the band numbers whose view angles are wanted (e.g. ``(2, 3, 4, 5, 6, 7)``);
            ETM+ band 6 as ``6`` (read from VCID 1), ``61`` or ``62``.
        step_px: node spacing in reference-band L1T pixels.
        mtl: the scene's MTL facts, for the fallback and the published scene-centre sun angles.

    Returns:
        The angle grid, view grids keyed ``B<n>`` (``B61``/``B62`` for the ETM+ VCIDs).

    Raises:
        InvalidInputError: the file is not an ANG.txt, lacks a requested band, or (fallback) no
            MTL was given.
    """
    where = f"files[{path.name}]"
    groups = _read_ang_groups(path, where)
    projection = groups.get("PROJECTION", {})
    if not any(name.startswith("RPC_BAND") for name in groups):
        if mtl is None:
            raise InvalidInputError(
                FieldProblem(
                    where,
                    "has no RPC_BANDnn groups (not an angle coefficient file)",
                    "give the scene's MTL too, for its scene-centre sun angles",
                )
            )
        return scene_center_grid(mtl, crs=_ang_crs(projection, where), where=where)
    crs = _ang_crs(projection, where)
    ul = _floats(projection, "UL_CORNER", 2, where)
    models = {
        number: _band_model(*_band_group(groups, number, where), where)
        for number in sorted(set(bands))
    }
    reference = models.get(4) or next(iter(models.values()))
    rows = math.ceil((reference.l1t_lines - 1) / step_px) + 1
    cols = math.ceil((reference.l1t_samps - 1) / step_px) + 1
    lines, samps = np.meshgrid(
        np.arange(rows, dtype=np.float64) * step_px,
        np.arange(cols, dtype=np.float64) * step_px,
        indexing="ij",
    )
    view = _view_grids(models, reference, lines, samps, where)
    s_zen, s_az, *_ = _band_angles(reference, lines, samps)
    sun_zen, sun_az = _fill_sun(s_zen, s_az)
    mean_sun = None
    if mtl is not None and mtl.sun_elevation is not None and mtl.sun_azimuth is not None:
        mean_sun = (90.0 - mtl.sun_elevation, mtl.sun_azimuth % 360.0)
    pixel = reference.pixel_size
    layout = (
        "rational polynomials per scan direction"
        if reference.directions
        else "rational polynomials"
    )
    return AngleGrid(
        geometry=GridGeometry(
            x0=ul[0], y0=ul[1], dx=step_px * pixel, dy=step_px * pixel, rows=rows, cols=cols
        ),
        crs=crs,
        sun_zenith=sun_zen,
        sun_azimuth=sun_az,
        view_zenith=view.zenith,
        view_azimuth=view.azimuth,
        source=f"{path.name}: USGS angle coefficients ({layout}, mean scene height)",
        mean_sun=mean_sun,
        view_seen=view.seen,
    )


@dataclass(frozen=True, slots=True)
class _ViewGrids:
    zenith: dict[str, FloatArray]
    azimuth: dict[str, FloatArray]
    seen: dict[str, npt.NDArray[np.bool_]]


def _read_ang_groups(path: Path, where: str) -> dict[str, dict[str, Any]]:
    try:
        return parse_ang(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as err:
        raise InvalidInputError(
            FieldProblem(where, f"cannot be read as an ANG.txt: {err}", "give the scene's ANG.txt")
        ) from err


def _view_grids(
    models: Mapping[int, _BandModel],
    reference: _BandModel,
    lines: FloatArray,
    samps: FloatArray,
    where: str,
) -> _ViewGrids:
    """Evaluate each band's view angles at the reference band's L1T nodes (same ground points).

    Every band's L1T image starts at the same upper-left pixel centre, so a band of another
    pixel size sees reference (line, sample) at (line, sample) * reference size / band size.

    Raises:
        InvalidInputError: a band sees none of the grid.
    """
    grids = _ViewGrids(zenith={}, azimuth={}, seen={})
    for number, model in models.items():
        scale = reference.pixel_size / model.pixel_size
        _, _, v_zen, v_az, _ = _band_angles(model, lines * scale, samps * scale)
        key = f"B{number}"
        grids.seen[key] = np.isfinite(v_zen)
        if not grids.seen[key].any():
            raise InvalidInputError(
                FieldProblem(
                    where, f"band {number} sees none of the grid", "give an unmodified ANG.txt"
                )
            )
        grids.zenith[key], grids.azimuth[key] = _fill_angles(v_zen, v_az)
    return grids


def _ang_crs(projection: Mapping[str, Any], where: str) -> str:
    name = str(projection.get("MAP_PROJECTION", "")).upper()
    zone = projection.get("UTM_ZONE")
    if name != "UTM" or not isinstance(zone, int):
        raise InvalidInputError(
            FieldProblem(
                where,
                f"projection {name or '?'} is not supported",
                "give a UTM scene (Landsat Collection 2 scenes are UTM outside Antarctica)",
            )
        )
    # Collection 2 uses northern-hemisphere UTM zones everywhere (negative northings south)
    return f"EPSG:{32600 + zone}"


def scene_center_grid(mtl: LandsatFacts, *, crs: str, where: str) -> AngleGrid:
    """Return a constant grid: the MTL's scene-centre sun angles and a nadir view everywhere.

    An approximation for angle files without rational polynomials: Landsat view zeniths stay
    below 7.5 degrees, so a nadir view misses at most that much.

    Raises:
        InvalidInputError: the MTL has no SUN_ELEVATION/SUN_AZIMUTH.
    """
    if mtl.sun_elevation is None or mtl.sun_azimuth is None:
        raise InvalidInputError(
            FieldProblem(where, "the MTL has no SUN_ELEVATION/SUN_AZIMUTH", "give the scene's MTL")
        )
    ones = np.ones((2, 2))
    zenith = 90.0 - mtl.sun_elevation
    return AngleGrid(
        geometry=GridGeometry(x0=0.0, y0=0.0, dx=1.0, dy=1.0, rows=2, cols=2),
        crs=crs,
        sun_zenith=ones * zenith,
        sun_azimuth=ones * (mtl.sun_azimuth % 360.0),
        view_zenith={ALL_BANDS: ones * 0.0},
        view_azimuth={ALL_BANDS: ones * 0.0},
        source=f"{mtl.path.name}: scene-centre sun angles, nadir view (approximation)",
        mean_sun=(zenith, mtl.sun_azimuth % 360.0),
    )


# --------------------------------------------------------------------------- Landsat bands


def read_landsat_angle_bands(
    paths: Mapping[str, Path],
    *,
    step_px: int = LANDSAT_NODE_STEP_PX,
    mtl: LandsatFacts | None = None,
) -> AngleGrid:
    """Read Landsat C2 angle bands (``SZA``, ``SAA``, ``VZA``, ``VAA``) onto a coarse grid.

    The bands hold hundredths of a degree (int16) for band 4's geometry, which stands for every
    band here. They are read decimated (nearest) so that each node is one source pixel; nodata
    nodes (outside the scene) are extrapolated.

    Args:
        paths: the four angle rasters by kind.
        step_px: node spacing in source pixels.
        mtl: the MTL facts, for the published scene-centre sun angles.

    Raises:
        InvalidInputError: a band is missing, unreadable, or the four differ in grid.
    """
    missing = [kind for kind in ("SZA", "SAA", "VZA", "VAA") if kind not in paths]
    if missing:
        raise InvalidInputError(
            FieldProblem(
                "files",
                f"Landsat angle bands {', '.join(missing)} are missing",
                "give all four of SZA, SAA, VZA, VAA, or the scene's ANG.txt instead",
            )
        )
    arrays: dict[str, FloatArray] = {}
    reference: tuple[Any, ...] | None = None
    geometry: GridGeometry | None = None
    crs = ""
    for kind in ("SZA", "SAA", "VZA", "VAA"):
        path = paths[kind]
        try:
            with rasterio.open(path) as ds:
                grid_id = (ds.crs, ds.transform, ds.width, ds.height)
                if reference is not None and grid_id != reference:
                    raise InvalidInputError(
                        FieldProblem(
                            f"files[{path.name}]",
                            "is not on the same grid as the other angle bands",
                            "give the four angle bands of one scene",
                        )
                    )
                reference = grid_id
                rows = math.ceil(ds.height / step_px)
                cols = math.ceil(ds.width / step_px)
                data = ds.read(1, out_shape=(rows, cols), resampling=Resampling.nearest)
                values = data.astype(np.float64) / 100.0
                if ds.nodata is not None:
                    values[data == ds.nodata] = np.nan
                arrays[kind] = values
                if geometry is None:
                    t = ds.transform
                    fx, fy = ds.width / cols, ds.height / rows
                    geometry = GridGeometry(
                        x0=t.c + 0.5 * fx * t.a,
                        y0=t.f + 0.5 * fy * t.e,
                        dx=fx * t.a,
                        dy=-fy * t.e,
                        rows=rows,
                        cols=cols,
                    )
                    crs = ds.crs.to_string() if ds.crs else ""
        except RasterioError as err:
            raise InvalidInputError(
                FieldProblem(f"files[{path.name}]", f"cannot be read: {err}", "give the GeoTIFF")
            ) from err
    assert geometry is not None  # noqa: S101 - four bands were read
    sun_zen, sun_az = _fill_sun(arrays["SZA"], arrays["SAA"])
    view_zen, view_az = _fill_angles(arrays["VZA"], arrays["VAA"])
    mean_sun = None
    if mtl is not None and mtl.sun_elevation is not None and mtl.sun_azimuth is not None:
        mean_sun = (90.0 - mtl.sun_elevation, mtl.sun_azimuth % 360.0)
    return AngleGrid(
        geometry=geometry,
        crs=crs,
        sun_zenith=sun_zen,
        sun_azimuth=sun_az,
        view_zenith={ALL_BANDS: view_zen},
        view_azimuth={ALL_BANDS: view_az},
        source="Landsat C2 angle bands SZA/SAA/VZA/VAA (band 4 geometry for every band)",
        mean_sun=mean_sun,
    )


__all__ = [
    "ALL_BANDS",
    "AngleGrid",
    "GridGeometry",
    "PixelAngles",
    "WindowInterpolator",
    "angles_from_components",
    "fill_plane",
    "read_landsat_angle_bands",
    "read_landsat_ang",
    "read_s2_tile_angles",
    "scene_center_grid",
    "view_components",
]
