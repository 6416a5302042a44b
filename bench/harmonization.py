"""Benchmark: NBAR harmonization of a full Sentinel-2 tile vs one plain numpy pass, same run.

Usage: ``.venv/bin/python bench/harmonization.py [--size 10980] [--bands 6] [--workdir DIR]``

Input: ``--bands`` bands of ``--size`` x ``--size`` pixels laid out as the correction step writes
them (int16 reflectance x 10000, scale 0.0001 in the raster metadata, nodata -9999, DEFLATE with
predictor, 256 px tiles) on the real grid of MGRS tile 23LLF (EPSG:32723, 10 m), with spatial
structure and a nodata wedge, plus a synthetic but well-formed ``MTD_TL.xml`` for that tile
(5 km sun grid; per band 6 staggered detectors with NaN outside their footprints, as ESA writes).

Each contender runs in its own child process (so its peak RSS is its own), on the same files:

- ``nbar``: ``NbarProcessor.run`` as the DAG runs it (angles, c-factor, HLS bandpass, windowed,
  int16 COG with internal overviews per band);
- ``numpy``: one plain pass that reads each band window by window, multiplies it by a float32
  array, casts back to int16 and writes a tiled DEFLATE GeoTIFF (same windows, same
  compression, same GDAL threads; no overviews).

A third child, ``numpy-cog``, runs the same numpy pass but writes through the same COG writer
as ``nbar`` (raw tiled GeoTIFF, then ``write_cog`` with internal overviews), to separate the cost
of the harmonization from the cost of the COG format.

Each child runs ``--repeat`` times, interleaved; the best time of each is kept (the machine may
be shared). Prints wall times and peak RSS (``ru_maxrss`` of each child, cross-checked with
``RUSAGE_CHILDREN``), then the ratios. Targets: nbar / numpy <= 2.0, nbar peak RSS <= 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window
from shared import bench_scene, tiled_profile

REPO = Path(__file__).resolve().parents[1]
EPSG = 32723
TILE_ORIGIN = (399960.0, 8700040.0)  # real MGRS 23LLF upper-left corner
BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
SCENE_ID = "S2A_MSIL2A_20200109T132231_N0400_R038_T23LLF_20200109T145429"
WINDOW = 1024


def make_band(path: Path, size: int, seed: int) -> None:
    """Write a structured int16 reflectance x 10000 band with a nodata wedge."""
    rng = np.random.default_rng(seed)
    profile = tiled_profile(
        size,
        size,
        dtype="int16",
        crs=f"EPSG:{EPSG}",
        transform=Affine(10.0, 0.0, TILE_ORIGIN[0], 0.0, -10.0, TILE_ORIGIN[1]),
        nodata=-9999,
        block=256,
        compress="DEFLATE",
        predictor=2,
        BIGTIFF="IF_SAFER",
    )
    coarse = rng.uniform(200, 4500, (size // 256 + 2, size // 256 + 2)).astype(np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        dst.scales = (1e-4,)
        dst.offsets = (0.0,)
        for row in range(0, size, WINDOW):
            rows = min(WINDOW, size - row)
            yi = np.arange(row, row + rows) // 256
            field = coarse[yi][:, np.arange(size) // 256]
            noise = rng.normal(0, 120, (rows, size)).astype(np.float32)
            data = np.clip(field + noise, -500, 10000).astype(np.int16)
            cols = np.arange(size)[None, :]
            wedge = cols < (size // 6 - np.arange(row, row + rows)[:, None] // 6)
            data[wedge] = -9999
            dst.write(data, 1, window=Window(0, row, size, rows))


def _grid(values: np.ndarray[Any, Any]) -> str:
    lines = []
    for row in values:
        lines.append(
            "<VALUES>" + " ".join("NaN" if np.isnan(v) else f"{v:.4f}" for v in row) + "</VALUES>"
        )
    return "".join(lines)


def _angle_block(
    tag: str, zenith: np.ndarray[Any, Any], azimuth: np.ndarray[Any, Any], attributes: str = ""
) -> str:
    step = '<COL_STEP unit="m">5000</COL_STEP><ROW_STEP unit="m">5000</ROW_STEP>'
    return (
        f"<{tag}{attributes}><Zenith>{step}<Values_List>{_grid(zenith)}</Values_List></Zenith>"
        f"<Azimuth>{step}<Values_List>{_grid(azimuth)}</Values_List></Azimuth></{tag}>"
    )


def make_tile_metadata(path: Path) -> None:
    """Write a synthetic MTD_TL.xml for 23LLF with ESA's structure (sun + per-detector grids).

    Geometry: the satellite track runs north-south 150 km east of the tile's west edge at
    786 km altitude; six detectors 20 km wide (overlapping by 2 km) see the tile, even ones
    looking 1 degree forward, odd ones backward; each detector grid is NaN outside its strip.
    """
    n = 23
    rows, cols = np.indices((n, n), dtype=float)
    sun_zen = 33.0 + 0.05 * rows - 0.02 * cols
    sun_az = 75.0 + 0.04 * cols + 0.01 * rows
    east_km = cols * 5.0 - 150.0  # distance east of the track
    blocks = []
    for band_id in range(13):
        for detector in range(6):
            lo, hi = -150.0 + detector * 18.0 - 1.0, -150.0 + (detector + 1) * 18.0 + 1.0
            inside = (east_km + 150.0 >= lo + 150.0) & (east_km + 150.0 <= hi + 150.0)
            along = 1.0 if detector % 2 == 0 else -1.0
            across_tan = east_km / 786.0
            along_tan = math.tan(math.radians(along))
            zen = np.degrees(np.arctan(np.hypot(across_tan, along_tan)))
            az = np.degrees(np.arctan2(across_tan, along_tan)) % 360 + 0.1 * band_id
            zen[~inside] = np.nan
            az[~inside] = np.nan
            attributes = f' bandId="{band_id}" detectorId="{detector + 1}"'
            blocks.append(_angle_block("Viewing_Incidence_Angles_Grids", zen, az, attributes))
    geocoding = "".join(
        f'<Geoposition resolution="{r}"><ULX>{TILE_ORIGIN[0]:.0f}</ULX>'
        f"<ULY>{TILE_ORIGIN[1]:.0f}</ULY><XDIM>{r}</XDIM><YDIM>-{r}</YDIM></Geoposition>"
        for r in (10, 20, 60)
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<n1:Level-2A_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/'
        'S2_PDI_Level-2A_Tile_Metadata.xsd"><n1:Geometric_Info><Tile_Geocoding>'
        "<HORIZONTAL_CS_NAME>WGS84 / UTM zone 23S</HORIZONTAL_CS_NAME>"
        f"<HORIZONTAL_CS_CODE>EPSG:{EPSG}</HORIZONTAL_CS_CODE>{geocoding}</Tile_Geocoding>"
        f"<Tile_Angles>{_angle_block('Sun_Angles_Grid', sun_zen, sun_az)}"
        f"<Mean_Sun_Angle><ZENITH_ANGLE>{sun_zen.mean():.6f}</ZENITH_ANGLE>"
        f"<AZIMUTH_ANGLE>{sun_az.mean():.6f}</AZIMUTH_ANGLE></Mean_Sun_Angle>"
        + "".join(blocks)
        + "</Tile_Angles></n1:Geometric_Info></n1:Level-2A_Tile_ID>"
    )
    path.write_text(xml)


# --------------------------------------------------------------------------- children


def _numpy_pass(src_path: Path, dest: Path, **creation: Any) -> None:
    """Read ``src_path`` window by window, multiply by a float32 array, write int16 tiles."""
    factor = np.float32(1.05)
    with rasterio.open(src_path) as src:
        profile = tiled_profile(
            src.width,
            src.height,
            dtype="int16",
            crs=src.crs,
            transform=src.transform,
            nodata=-9999,
            BIGTIFF="IF_SAFER",
            **creation,
        )
        with rasterio.open(dest, "w", **profile) as dst:
            for row in range(0, src.height, WINDOW):
                for col in range(0, src.width, WINDOW):
                    window = Window(
                        col, row, min(WINDOW, src.width - col), min(WINDOW, src.height - row)
                    )
                    data = src.read(1, window=window)
                    factors = np.full(data.shape, factor, dtype=np.float32)
                    dst.write((data * factors).astype(np.int16), 1, window=window)


def child_numpy(workdir: Path, bands: tuple[str, ...], workers: int | None) -> dict[str, Any]:
    """Read, multiply, write each band window by window (the baseline)."""
    out_dir = workdir / "numpy"
    out_dir.mkdir(exist_ok=True)
    with rasterio.Env(GDAL_CACHEMAX=256):
        for band in bands:
            _numpy_pass(
                workdir / "input" / f"{band}.tif",
                out_dir / f"{band}.tif",
                compress="DEFLATE",
                predictor=2,
                NUM_THREADS="ALL_CPUS",
            )
    return {}


def child_numpy_cog(workdir: Path, bands: tuple[str, ...], workers: int | None) -> dict[str, Any]:
    """The same numpy pass, written as our outputs are: raw tiled GeoTIFF, then ``write_cog``."""
    from include.processors.publish.cog import CogOptions, write_cog

    out_dir = workdir / "numpy_cog"
    out_dir.mkdir(exist_ok=True)
    with rasterio.Env(GDAL_CACHEMAX=256):
        for band in bands:
            raw = out_dir / f".{band}.raw.tif"
            _numpy_pass(workdir / "input" / f"{band}.tif", raw)
            write_cog(raw, out_dir / f"{band}.tif", nodata=-9999, options=CogOptions(), scale=1e-4)
            raw.unlink()
    return {}


def child_nbar(workdir: Path, bands: tuple[str, ...], workers: int | None) -> dict[str, Any]:
    """Run the nbar processor on the tile, as the harmonization step does."""
    from include.common.config import load_collections
    from include.processors.base import ProcessorInputs
    from include.processors.harmonization import NbarProcessor

    files = {band: workdir / "input" / f"{band}.tif" for band in bands}
    files["granule_metadata"] = workdir / "input" / "MTD_TL.xml"
    scene = bench_scene(
        SCENE_ID,
        catalog="bench",
        dataset="bench",
        when=datetime(2020, 1, 9, 13, 22, 31, tzinfo=UTC),
        tile="23LLF",
    )
    result = NbarProcessor().run(
        ProcessorInputs(
            scene=scene,
            collection=load_collections()["S2_NBAR-1"],
            files=files,
            output_dir=workdir / "nbar",
            args={} if workers is None else {"workers": workers},
        )
    )
    return {
        "c_factor_mean": {b: result.metadata["bands"][b]["c_factor_mean"] for b in bands},
        "target_sun_zenith_deg": result.metadata["target_sun_zenith_deg"],
    }


def run_child(kind: str, workdir: Path, bands: int, workers: int | None) -> dict[str, Any]:
    """Run one contender in a fresh interpreter; return its timing and peak RSS."""
    started = time.perf_counter()
    command = [sys.executable, __file__, "--child", kind, "--workdir", str(workdir)]
    command += ["--bands", str(bands)]
    if workers is not None:
        command += ["--workers", str(workers)]
    completed = subprocess.run(
        command,
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    elapsed = time.perf_counter() - started
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    report["wall_s"] = elapsed
    report["children_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return report


def main() -> None:
    """Prepare the tile, run both contenders, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10980)
    parser.add_argument("--bands", type=int, default=6, choices=range(1, len(BANDS) + 1))
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", choices=tuple(CHILDREN), default=None)
    parser.add_argument("--workers", type=int, default=None, help="nbar bands at a time")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved runs of each")
    args = parser.parse_args()
    bands = BANDS[: args.bands]
    if args.child is not None:
        started = time.perf_counter()
        extra = CHILDREN[args.child](args.workdir, bands, args.workers)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"run_s": time.perf_counter() - started, "peak_rss_mb": peak_mb, **extra}))
        return

    own_dir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="bench-harmonization-")) if own_dir else args.workdir
    try:
        (workdir / "input").mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        for seed, band in enumerate(bands):
            target = workdir / "input" / f"{band}.tif"
            if not target.exists():
                make_band(target, args.size, seed)
        make_tile_metadata(workdir / "input" / "MTD_TL.xml")
        print(
            f"input: {args.bands} bands x {args.size}x{args.size} int16 on EPSG:{EPSG} "
            f"(prepared in {time.perf_counter() - started:.0f} s), window {WINDOW} px, "
            f"{os.cpu_count()} CPUs"
        )
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in CHILDREN}
        for _ in range(args.repeat):  # interleaved, best of each: the machine may be shared
            for kind in ("numpy", "nbar", "numpy-cog"):
                runs[kind].append(run_child(kind, workdir, args.bands, args.workers))
        load = os.getloadavg()
        numpy_report, nbar_report, numpy_cog_report = (
            min(runs[kind], key=lambda r: r["run_s"]) for kind in ("numpy", "nbar", "numpy-cog")
        )
        nbar_report["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs["nbar"])
        print(f"best of {args.repeat} interleaved runs; load average after: {load[0]:.1f}")
        for name, report in (
            ("numpy pass -> GTiff", numpy_report),
            ("numpy pass -> COG", numpy_cog_report),
            ("nbar -> COG", nbar_report),
        ):
            print(
                f"{name:>20}: {report['run_s']:7.1f} s (process {report['wall_s']:.1f} s), "
                f"peak RSS {report['peak_rss_mb']:7.0f} MB"
            )
        ratio = nbar_report["run_s"] / numpy_report["run_s"]
        ratio_cog = nbar_report["run_s"] / numpy_cog_report["run_s"]
        print(f"ratio nbar / numpy pass (GTiff, no overviews): {ratio:.2f} (target <= 2.0)")
        print(f"ratio nbar / numpy pass (same COG writer): {ratio_cog:.2f}")
        print(
            f"nbar peak RSS: {nbar_report['peak_rss_mb'] / 1024:.2f} GB (target <= 1.5 GB); "
            f"max over children (RUSAGE_CHILDREN): {nbar_report['children_maxrss_mb']:.0f} MB"
        )
        print(
            f"nbar target sun zenith {nbar_report['target_sun_zenith_deg']:.2f} deg, "
            f"mean c-factor {nbar_report['c_factor_mean']}"
        )
    finally:
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)


CHILDREN = {"numpy": child_numpy, "numpy-cog": child_numpy_cog, "nbar": child_nbar}

if __name__ == "__main__":
    main()
