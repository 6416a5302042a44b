"""Benchmark: our COG conversion of a 10980 x 10980 uint16 band vs rio-cogeo, same run.

Usage: ``.venv/bin/python bench/publish.py [--size 10980] [--repeat 2] [--threads N]``

The source is a Sentinel-2-sized band (10980 x 10980 uint16, 10 m UTM grid) with spatial
structure (smooth fields, edges, noise) and a nodata wedge, written once as a tiled GeoTIFF.
Each converter writes a COG with the same options: 512 px tiles, DEFLATE with horizontal
predictor, nodata 0, internal overviews with average resampling, the same GDAL thread count:

- ours: ``include.processors.publish.cog.write_cog`` (GDAL COG driver through a VRT, written to a
  temporary name, layout validated, renamed);
- baseline: ``rio_cogeo.cogeo.cog_translate`` with ``use_cog_driver=True`` (the GDAL COG driver,
  what ``gdal_translate -of COG`` runs; the rasterio wheel ships no gdal_translate binary);
- for reference: ``cog_translate`` in its default mode (GTiff + overviews, then copy).

Each is run ``--repeat`` times, interleaved; the best time of each is compared. Prints one line
per converter and the ratio ours / baseline (target <= 1.1).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window
from shared import tiled_profile

from include.processors.publish.cog import CogOptions, validate_cog, write_cog


def make_source(path: Path, size: int) -> None:
    """Write a structured uint16 band of ``size`` x ``size`` as a tiled, deflated GeoTIFF."""
    rng = np.random.default_rng(42)
    profile = tiled_profile(
        size,
        size,
        dtype="uint16",
        crs="EPSG:32723",
        transform=Affine(10, 0, 399960, 0, -10, 8700040),
        nodata=0,
        compress="DEFLATE",
        predictor=2,
    )
    coarse = rng.uniform(300, 4000, (size // 256 + 2, size // 256 + 2)).astype(np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size, 1024):
            rows = min(1024, size - row)
            y = (np.arange(row, row + rows) / 256.0)[:, None]
            x = (np.arange(size) / 256.0)[None, :]
            yi, xi = y.astype(int), x.astype(int)
            fields = coarse[yi, xi]  # blocky land-cover parcels
            smooth = 600 * np.sin(x / 3.0) * np.cos(y / 5.0)
            noise = rng.normal(0, 40, (rows, size))
            data = np.clip(fields + smooth + noise, 1, 10000).astype(np.uint16)
            cols = np.arange(size)[None, :]
            data[cols < (np.arange(row, row + rows)[:, None] * 0.3 - size * 0.1)] = 0  # swath edge
            dst.write(data, 1, window=Window(0, row, size, rows))


def ours(src: Path, dst: Path, threads: str) -> None:
    write_cog(
        src,
        dst,
        nodata=0,
        options=CogOptions(compress="deflate", blocksize=512, num_threads=threads),
    )


def rio_cogeo(src: Path, dst: Path, threads: str, *, use_cog_driver: bool) -> None:
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    profile = cog_profiles.get("deflate")
    profile.update(
        blockxsize=512, blockysize=512, predictor=2, BIGTIFF="IF_SAFER", NUM_THREADS=threads
    )
    cog_translate(
        str(src),
        str(dst),
        profile,
        nodata=0,
        overview_resampling="average",
        config={"GDAL_NUM_THREADS": threads, "NUM_THREADS": threads},
        use_cog_driver=use_cog_driver,
        in_memory=False,
        quiet=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10980)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", default=str(os.cpu_count() or 1))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        folder = Path(tmp)
        src = folder / "band.tif"
        started = time.perf_counter()
        make_source(src, args.size)
        print(
            f"source: {args.size}x{args.size} uint16, {src.stat().st_size / 1e6:.1f} MB, "
            f"made in {time.perf_counter() - started:.1f} s; threads={args.threads}"
        )
        runs: dict[str, Callable[[Path], None]] = {
            "ours (write_cog)": lambda dst: ours(src, dst, args.threads),
            "rio-cogeo --use-cog-driver": lambda dst: rio_cogeo(
                src, dst, args.threads, use_cog_driver=True
            ),
            "rio-cogeo (default mode)": lambda dst: rio_cogeo(
                src, dst, args.threads, use_cog_driver=False
            ),
        }
        best: dict[str, float] = {}
        sizes: dict[str, int] = {}
        for attempt in range(args.repeat):
            for index, (name, run) in enumerate(runs.items()):
                dst = folder / f"out{index}_{attempt}.tif"
                started = time.perf_counter()
                run(dst)
                elapsed = time.perf_counter() - started
                validate_cog(dst, blocksize=512)
                best[name] = min(best.get(name, elapsed), elapsed)
                sizes[name] = dst.stat().st_size
                dst.unlink()
        for name, seconds in best.items():
            print(f"{name:30s} best {seconds:7.2f} s   size {sizes[name] / 1e6:7.1f} MB")
        ratio = best["ours (write_cog)"] / best["rio-cogeo --use-cog-driver"]
        print(f"ratio ours / rio-cogeo --use-cog-driver = {ratio:.3f} (target <= 1.1)")
        ratio_default = best["ours (write_cog)"] / best["rio-cogeo (default mode)"]
        print(f"ratio ours / rio-cogeo (default mode)   = {ratio_default:.3f}")


if __name__ == "__main__":
    main()
