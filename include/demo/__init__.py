"""Offline demo: a synthetic Sentinel-2 L1C catalog (``build``) and a STAC API (``server``)."""
