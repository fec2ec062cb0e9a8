"""``lodekit md``: molecular dynamics of one structure with a potential (ASE dynamics)."""

from __future__ import annotations

import math
import time

import numpy as np

from ..errors import LodekitError
from ._common import check_species, output_folder, positive, read_potential, read_structures

HELP = "molecular dynamics (NVE or Langevin) of one structure with a potential"

#: Work bound of --steps.
MAX_STEPS = 10**7
#: The largest --dt (fs): beyond it, no atomistic system is integrated stably.
MAX_DT = 10.0
#: Written in DIR.
TRAJECTORY, LOG = "trajectory.extxyz", "md.log"


def add_arguments(parser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", help="potential file (lodekit train, LodePotential.save)"
    )
    parser.add_argument("structure", metavar="STRUCTURE", help="ASE-readable structure file")
    parser.add_argument("--steps", type=int, required=True, metavar="N", help="number of steps")
    parser.add_argument("--dt", type=float, required=True, metavar="FS", help="time step (fs)")
    parser.add_argument(
        "--temperature",
        type=float,
        metavar="K",
        help="initial Maxwell-Boltzmann velocities at K, and Langevin's target "
        "(default: atoms at rest)",
    )
    parser.add_argument(
        "--thermostat",
        choices=["none", "langevin"],
        default="none",
        help="none: NVE (velocity Verlet); langevin: NVT (default: none)",
    )
    parser.add_argument(
        "--friction",
        type=float,
        default=0.01,
        metavar="1/FS",
        help="Langevin friction (1/fs, default: 0.01)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the velocities and Langevin noise (default: 0)",
    )
    parser.add_argument(
        "--frame", type=int, default=-1, metavar="I", help="frame of STRUCTURE (default: last)"
    )
    parser.add_argument("--out", metavar="DIR", help="output folder (default: lodekit-md)")
    parser.add_argument(
        "--interval",
        type=int,
        default=10,
        metavar="N",
        help="write the log and trajectory every N steps (default: 10)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _check_options(args) -> None:
    """Refuse bad numbers before any file is read or written."""
    positive(args.steps, "--steps")
    if args.steps > MAX_STEPS:
        raise LodekitError(f"`--steps` is {args.steps}; at most {MAX_STEPS} steps are run")
    if not (math.isfinite(args.dt) and 0.0 < args.dt <= MAX_DT):
        raise LodekitError(f"`--dt` is {args.dt} but must be in (0, {MAX_DT:g}] fs")
    if args.temperature is not None and not (
        math.isfinite(args.temperature) and args.temperature >= 0.0
    ):
        raise LodekitError(
            f"`--temperature` is {args.temperature} but must be a finite temperature >= 0 K"
        )
    if args.thermostat == "langevin":
        if args.temperature is None:
            raise LodekitError("`--thermostat` langevin needs a target `--temperature` K")
        if not (math.isfinite(args.friction) and args.friction > 0.0):
            raise LodekitError(f"`--friction` is {args.friction} but must be positive (1/fs)")
    if args.seed < 0:
        raise LodekitError(f"`--seed` is {args.seed} but must be a non-negative integer")
    positive(args.interval, "--interval")


def run(args) -> int:
    _check_options(args)
    potential = read_potential(args.model)
    out = output_folder(args.out or "lodekit-md", "an output folder")
    frames = read_structures(args.structure, "STRUCTURE")
    if not -len(frames) <= args.frame < len(frames):
        raise LodekitError(
            f"`--frame` is {args.frame} but `STRUCTURE` {args.structure!r} has {len(frames)} "
            "frame(s)"
        )
    index = args.frame % len(frames)
    atoms = frames[index]
    check_species(potential, atoms, args.structure, index, "STRUCTURE")

    rng = np.random.default_rng(args.seed)
    atoms.set_momenta(initial_momenta(atoms.get_masses(), args.temperature, rng))
    out.mkdir(exist_ok=True)
    summary = simulate(atoms, potential, args, out, rng)
    print(_summary(summary, args, len(atoms), out))
    return 0


def initial_momenta(masses: np.ndarray, temperature: float | None, rng) -> np.ndarray:
    """Maxwell-Boltzmann momenta at ``temperature`` (K), without centre-of-mass motion.

    Parameters
    ----------
    masses : ndarray (n_atoms,), amu
    temperature : float or None
        None or 0: every atom at rest.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray (n_atoms, 3), ASE units (amu Å / ASE time)
    """
    from ase import units

    if not temperature:
        return np.zeros((len(masses), 3))
    momenta = np.sqrt(masses * units.kB * temperature)[:, None] * rng.standard_normal(
        (len(masses), 3)
    )
    # the centre of mass would drift at constant velocity and hold kinetic energy that is no
    # temperature: remove each atom's share (m_i / M) of the total momentum
    return momenta - masses[:, None] * (momenta.sum(axis=0) / masses.sum())


def temperature_of(kinetic: float, dof: int) -> float:
    """Instantaneous temperature (K) of ``kinetic`` energy (eV) in ``dof`` degrees of freedom."""
    from ase import units

    return 2.0 * kinetic / (dof * units.kB)


def degrees_of_freedom(n_atoms: int, thermostat: str) -> int:
    """3N - 3 in NVE, where the centre of mass starts at rest and stays so (the forces of a
    translation-invariant energy sum to zero); 3N under Langevin, whose noise moves it too."""
    return 3 * n_atoms - 3 if thermostat == "none" and n_atoms > 1 else 3 * n_atoms


class _Drift:
    """Running extremes and least-squares slope of the total energy against time (Welford's
    updates: sums of t and t*E would lose every digit over millions of steps)."""

    def __init__(self):
        self.n, self.mean_t, self.mean_e, self.ss_t, self.ss_te = 0, 0.0, 0.0, 0.0, 0.0
        self.low, self.high = math.inf, -math.inf
        self.temperature = 0.0

    def add(self, t: float, energy: float, temperature: float) -> None:
        self.n += 1
        dt = t - self.mean_t
        self.mean_t += dt / self.n
        self.mean_e += (energy - self.mean_e) / self.n
        self.ss_t += dt * (t - self.mean_t)
        self.ss_te += dt * (energy - self.mean_e)
        self.low, self.high = min(self.low, energy), max(self.high, energy)
        self.temperature += (temperature - self.temperature) / self.n

    @property
    def slope(self) -> float:
        """d E_total / d t (eV/fs); 0 for a single point."""
        return self.ss_te / self.ss_t if self.ss_t > 0 else 0.0


def simulate(atoms, potential, args, out, rng) -> dict:
    """Run the dynamics, writing the log and trajectory every ``args.interval`` steps.

    Returns
    -------
    dict
        ``drift`` (:class:`_Drift` of every step, time in fs), ``wall`` (s), ``rows``.
    """
    import ase.io
    from ase import units
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet
    from tqdm.auto import tqdm

    from ..interatomic import LodekitCalculator

    atoms.calc = LodekitCalculator(potential)
    step = args.dt * units.fs
    if args.thermostat == "langevin":
        # fixcm=False: the noise and friction act on all 3N degrees of freedom, the centre of
        # mass included, which samples the canonical ensemble exactly; ASE's fixcm=True does
        # not (it is deprecated since ASE 3.28)
        dynamics = Langevin(
            atoms,
            step,
            temperature_K=args.temperature,
            friction=args.friction / units.fs,
            fixcm=False,
            rng=rng,
        )
    else:
        dynamics = VelocityVerlet(atoms, step)
    dof = degrees_of_freedom(len(atoms), args.thermostat)
    drift, state = _Drift(), {"step": 0, "rows": 0}
    bar = tqdm(total=args.steps, desc="md", unit="step", disable=args.quiet)

    with open(out / LOG, "w") as log, open(out / TRAJECTORY, "w") as trajectory:
        log.write(
            f"# {'step':>8} {'time_fs':>12} {'potential_eV':>16} {'kinetic_eV':>16} "
            f"{'total_eV':>16} {'temperature_K':>14}\n"
        )

        def observe():
            # ASE calls this once before the first step, then after each step
            number = state["step"]
            potential_energy = atoms.get_potential_energy()
            kinetic = atoms.get_kinetic_energy()
            temperature = temperature_of(kinetic, dof)
            drift.add(number * args.dt, potential_energy + kinetic, temperature)
            if number % args.interval == 0:
                log.write(
                    f"{number:>10d} {number * args.dt:>12.4f} {potential_energy:>16.8f} "
                    f"{kinetic:>16.8f} {potential_energy + kinetic:>16.8f} {temperature:>14.4f}\n"
                )
                log.flush()
                frame = atoms.copy()
                # the input's labels (a reference energy, forces) are not this frame's
                frame.info = {"step": number, "time_fs": number * args.dt}
                frame.arrays.pop("forces", None)
                frame.calc = SinglePointCalculator(
                    frame, energy=potential_energy, forces=atoms.get_forces(apply_constraint=False)
                )
                ase.io.write(trajectory, frame, format="extxyz")
                trajectory.flush()
                state["rows"] += 1
            if number:
                bar.update(1)
            state["step"] += 1

        dynamics.attach(observe, interval=1)
        start = time.perf_counter()
        try:
            dynamics.run(args.steps)
        finally:
            bar.close()
            # ASE (3.23) opens os.devnull as the log of a dynamics without one: close it
            dynamics.close()
        wall = time.perf_counter() - start
    return {"drift": drift, "wall": wall, "rows": state["rows"]}


def _summary(summary: dict, args, n_atoms: int, out) -> str:
    drift = summary["drift"]
    kind = "NVE (velocity Verlet)" if args.thermostat == "none" else "Langevin"
    lines = [
        f"{args.steps} steps of {args.dt:g} fs ({args.steps * args.dt:g} fs), {n_atoms} atoms, "
        f"{kind}",
        f"wall time: {summary['wall'] / args.steps:.4g} s/step",
    ]
    if args.thermostat == "none":
        spread = drift.high - drift.low
        # eV/fs -> meV/atom/ps
        rate = drift.slope * 1e6 / n_atoms
        lines.append(
            f"total energy drift: max - min {spread:.3g} eV ({spread / n_atoms:.3g} eV/atom), "
            f"linear {rate:.3g} meV/atom/ps"
        )
    lines.append(f"mean temperature: {drift.temperature:.4g} K")
    lines.append(
        f"written to {out}/ ({TRAJECTORY}: {summary['rows']} frames, {LOG}: {summary['rows']} rows)"
    )
    return "\n".join(lines)
