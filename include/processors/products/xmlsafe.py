"""Parsing product XML (ESA MTD files, USGS MTL.xml) safely and by local tag name.

Provider metadata never needs a DTD, so a document declaring one (``<!DOCTYPE``/``<!ENTITY``,
the carrier of entity-expansion and external-entity attacks) is refused before parsing; the
bundled expat (>= 2.4) bounds entity amplification besides. Namespaces differ between product
versions (``psd-14`` / ``psd-15`` ...), so lookups go by local name.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - parsed only after refusing DTDs, see below
from collections.abc import Iterator
from pathlib import Path

from include.common.errors import FieldProblem, InvalidInputError

MAX_XML_BYTES = 64 * 1024**2
"""A tile MTD with angle grids is under 1 MB; anything near this bound is not metadata."""


def local_name(tag: str) -> str:
    """Return ``tag`` without its ``{namespace}`` prefix."""
    return tag.rsplit("}", 1)[-1]


def parse_xml(path: Path) -> ET.Element:
    """Parse ``path`` into its root element.

    Raises:
        InvalidInputError: the file is missing, too large, declares a DTD, or is not XML.
    """
    where = f"files[{path.name}]"
    try:
        size = path.stat().st_size
    except OSError as err:
        raise InvalidInputError(
            FieldProblem(where, f"{path} cannot be read ({err})", "download the product again")
        ) from err
    if size > MAX_XML_BYTES:
        raise InvalidInputError(
            FieldProblem(where, f"is {size} bytes, too large for metadata", "check the file")
        )
    data = path.read_bytes()
    head = data[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in data.upper():
        raise InvalidInputError(
            FieldProblem(where, "declares a DTD or entities", "give the provider's own file")
        )
    try:
        return ET.fromstring(data)  # noqa: S314 - DTDs refused above; expat bounds expansion
    except ET.ParseError as err:
        raise InvalidInputError(
            FieldProblem(where, f"is not well-formed XML ({err})", "download the product again")
        ) from err


def iter_local(root: ET.Element, name: str) -> Iterator[ET.Element]:
    """Yield every element below (and at) ``root`` whose local name is ``name``."""
    for element in root.iter():
        if local_name(element.tag) == name:
            yield element


def find_local(root: ET.Element, *names: str) -> ET.Element | None:
    """Return the first element whose local name is one of ``names`` (tried in order)."""
    for name in names:
        for element in iter_local(root, name):
            return element
    return None


def text_of(root: ET.Element, *names: str) -> str | None:
    """Return the stripped text of the first element named one of ``names``, or None."""
    element = find_local(root, *names)
    if element is None or element.text is None:
        return None
    text = element.text.strip()
    return text or None
