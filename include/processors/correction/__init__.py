"""Correction processors: ``toa``, ``provider-l2``, ``sen2cor``, ``lasrc``."""
