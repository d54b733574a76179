"""The default policy packs (``*.toml``), installed as the package ``retentiond.packs``.

This file only makes the directory a package, so that an installed wheel and an editable
install both find the packs through ``importlib.resources``; the packs are data, not code.
"""
