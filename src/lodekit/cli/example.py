"""``lodekit example``: LODE features of a shipped water box (or a given structure)."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import numpy as np

from ._common import output_file, read_structures

HELP = "LODE features of a shipped water box (or STRUCTURE), with a summary"


def add_arguments(parser) -> None:
    parser.add_argument("structure", nargs="?", help="any ASE-readable file (default: water64)")
    parser.add_argument("--out", help="also save the expansion to this .npz file")


def run(args) -> int:
    from ..expansion import LodeSphericalExpansion
    from ..persistence import save_expansion

    if args.out:
        output_file(args.out, "an .npz archive")
    path = args.structure or resources.files("lodekit") / "data" / "water64.extxyz"
    atoms = read_structures(str(path), "STRUCTURE")[-1]  # the last frame, as ase.io.read
    calculator = LodeSphericalExpansion(
        smearing=1.0, exponent=1, max_radial=6, max_angular=4, radius=5.0
    )
    start = time.perf_counter()
    expansion = calculator.compute(atoms)
    elapsed = time.perf_counter() - start

    print(f"structure: {Path(str(path)).name}: {len(atoms)} atoms, cell {atoms.cell.lengths()} Å")
    print(f"calculator: {calculator!r} (k_cutoff {calculator.effective_k_cutoff:.4f} 1/Å)")
    print(f"computed {expansion!r} in {elapsed * 1e3:.1f} ms")
    for l, block in enumerate(expansion.values):
        print(f"  l={l}: array {block.shape}, |c| max {np.abs(block).max():.4e}")
    # LODE nu = 1 per centre species: the l = 0 coefficients, averaged
    for z in expansion.center_types:
        rows = expansion.samples[:, 2] == z
        mean = expansion.values[0][rows, :, 0, 0].mean(axis=0)
        channels = ", ".join(
            f"Z={t}: {m:+.4f}" for t, m in zip(expansion.neighbor_types, mean, strict=True)
        )
        print(f"  centre Z={z}: mean c_n=0,l=0 per neighbour species: {channels}")
    if args.out:
        save_expansion(args.out, expansion)
        print(f"saved to {args.out}")
    return 0
