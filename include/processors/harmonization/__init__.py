"""Harmonization of Sentinel-2 and Landsat surface reflectance (DESIGN 1.2, 5).

``brdf`` (Ross-Thick/Li-Sparse-R kernels, Roy coefficients, c-factor), ``bandpass`` (HLS v2.0
MSI -> OLI), ``angles`` (sun/view angle grids from MTD_TL.xml, Landsat angle bands, ANG.txt),
``metadata`` (scaling facts and metadata discovery) and ``processor`` (the ``nbar`` processor).
"""

from include.processors.harmonization.processor import NbarOptions, NbarProcessor

__all__ = ["NbarOptions", "NbarProcessor"]
