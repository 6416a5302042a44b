"""Publish: band COGs, quicklook/thumbnail PNGs and a STAC Item (registered as ``publish``)."""

from __future__ import annotations

from include.processors.publish.processor import PUBLISH_VERSION, PublishOptions, PublishProcessor

__all__ = ["PUBLISH_VERSION", "PublishOptions", "PublishProcessor"]
