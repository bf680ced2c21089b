"""Which element an MD stage simulates, and its crystal and liquid from ASE's reference data.

The MD cost (``md:``) and RDF (``rdf:``) stages simulate a single-element system. Its element is the
configured one (``md.element`` / ``rdf.element``) or, when that is null, the single element the model was
trained on (``model.pt`` records its species, the species of the dataset). A model that was not trained on
the requested element, or a multi-element model with the element left to the data, stops here, before any
MD, with one message saying what is supported.

Crystal (MD cost): ASE's reference state of the element (``ase.data.reference_states``: structure and
lattice constant; Al: fcc, a = 4.05 A) unless ``md.crystal_structure`` / ``md.lattice_constant_A`` say
otherwise. Liquid (RDF): ``rdf.density_g_cm3``, or the reference solid's density times
``rdf.liquid_density_ratio``.
"""
from __future__ import annotations

from pathlib import Path

#: crystal structures the MD test system can be built in (``ase.build.bulk``)
STRUCTURES = ("fcc", "bcc", "hcp", "diamond", "sc")


class ElementError(ValueError):
    """The requested element cannot be simulated with this model / these settings; names the key."""


def symbol(z: int) -> str:
    from ase.data import chemical_symbols

    return chemical_symbols[int(z)]


def number(sym: str, key: str) -> int:
    from ase.data import atomic_numbers

    if sym not in atomic_numbers:
        raise ElementError(f"{key}: {sym!r} is not a chemical element symbol")
    return int(atomic_numbers[sym])


def model_species(model_path: str | Path) -> list[int]:
    """The atomic numbers a saved model was trained on (as recorded in ``model.pt``)."""
    from .model import read_model_payload

    payload = read_model_payload(model_path)
    return sorted(int(z) for z in payload.get("species", []) if int(z) != 0)


def resolve_element(configured: str | None, species, key: str, trained_on: str = "the model") -> str:
    """The element to simulate: ``configured`` (checked against ``species``), or the single element of
    ``species`` when ``configured`` is None. ``key`` names the config key in messages (``md.element``).
    ``species`` None: unknown (a reference potential without dataset provenance): ``configured`` is taken
    as it is and required."""
    if species is None:
        if configured is None:
            raise ElementError(f"{key} is null and there are no species to take the element from; set {key}")
        number(configured, key)
        return configured
    species = sorted(int(z) for z in species)
    names = ", ".join(symbol(z) for z in species) or "no species"
    if configured is None:
        if len(species) == 1:
            return symbol(species[0])
        raise ElementError(
            f"{key} is null (take the element from the data) but {trained_on} has {len(species)} elements "
            f"({names}); the MD cost and RDF stages simulate single-element systems only: set {key} to one of "
            f"{names}")
    if number(configured, key) not in species:
        raise ElementError(f"{key} = {configured}, but {trained_on} was trained on {names} only; set {key} to "
                           f"{'one of ' if len(species) > 1 else ''}{names} (or null)")
    return configured


def reference_crystal(sym: str) -> dict:
    """ASE's reference state of element ``sym``: ``{"structure", "a", "c/a"}`` (``c/a`` for hcp only);
    ``structure`` None when ASE has no supported crystal for it."""
    from ase.data import atomic_numbers, reference_states

    ref = reference_states[atomic_numbers[sym]] or {}
    structure = ref.get("symmetry")
    if structure not in STRUCTURES or "a" not in ref:
        return {"structure": None, "a": None, "c/a": None}
    return {"structure": structure, "a": float(ref["a"]), "c/a": ref.get("c/a")}


def crystal_settings(sym: str, structure: str | None = None, lattice_constant_A: float | None = None,
                     key: str = "md") -> dict:
    """``{"element", "crystal_structure", "lattice_constant_A", "c_over_a", "source"}`` of the MD crystal;
    unset values come from ASE's reference data (an error names the keys to set when it has none)."""
    ref = reference_crystal(sym)
    struct = structure or ref["structure"]
    if struct is None:
        raise ElementError(f"ASE has no reference crystal (one of {', '.join(STRUCTURES)}) for {sym}; set "
                           f"{key}.crystal_structure and {key}.lattice_constant_A")
    a = lattice_constant_A
    if a is None:
        if struct != ref["structure"]:
            raise ElementError(f"{key}.crystal_structure = {struct} is not ASE's reference structure of {sym} "
                               f"({ref['structure']}); set {key}.lattice_constant_A as well")
        a = ref["a"]
    c_over_a = None
    if struct == "hcp":
        c_over_a = float(ref["c/a"]) if ref["structure"] == "hcp" and ref["c/a"] else (8.0 / 3.0) ** 0.5
    source = ("config" if structure and lattice_constant_A else
              "ASE reference data" if not structure and not lattice_constant_A else "config + ASE reference data")
    return {"element": sym, "crystal_structure": struct, "lattice_constant_A": float(a), "c_over_a": c_over_a,
            "source": source}


def unit_cell(settings: dict):
    """The conventional (cubic, or orthorhombic for hcp) cell of the crystal in ``settings``
    (:func:`crystal_settings`)."""
    from ase.build import bulk

    sym, struct, a = settings["element"], settings["crystal_structure"], settings["lattice_constant_A"]
    if struct == "hcp":
        return bulk(sym, "hcp", a=a, c=a * settings["c_over_a"], orthorhombic=True)
    return bulk(sym, struct, a=a, cubic=True)


def mass_density_g_cm3(atoms) -> float:
    """Mass density of a periodic ``ase.Atoms`` (g/cm^3)."""
    from ase.units import _amu

    return float(atoms.get_masses().sum() * _amu * 1e3 / (atoms.get_volume() * 1e-24))


def liquid_density(sym: str, density_g_cm3: float | None, ratio: float) -> tuple[float, str]:
    """``(density g/cm^3, how it was chosen)``: the configured density, or ASE's reference solid density
    of ``sym`` times ``ratio`` (``rdf.liquid_density_ratio``)."""
    if density_g_cm3 is not None:
        return float(density_g_cm3), "rdf.density_g_cm3"
    ref = reference_crystal(sym)
    if ref["structure"] is None:
        raise ElementError(f"ASE has no reference crystal for {sym} to estimate its liquid density from; set "
                           f"rdf.density_g_cm3")
    solid = mass_density_g_cm3(unit_cell(crystal_settings(sym)))
    return solid * float(ratio), (f"ASE reference {ref['structure']} {sym} ({solid:.3f} g/cm3) x "
                                  f"rdf.liquid_density_ratio {ratio:g}")
