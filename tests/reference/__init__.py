"""Reference tests: lodekit against independent oracles (featomic 0.6.7, pymatgen, GROMACS,
Madelung constants, brute-force quadrature and closed forms).

Self-consistency checks (finite differences, symmetry, identities): tests/consistency/.
"""
