"""Consistency tests: lodekit against itself by an independent route (finite differences,
symmetry, identities, two code paths that must agree).

Independent oracles: tests/reference/.
"""
