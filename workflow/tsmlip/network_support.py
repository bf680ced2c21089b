"""The network settings the plain-torch HIPNN computes: the one statement of what it supports, in the base layer
(it imports nothing) so that planning checks it without importing torch."""
from __future__ import annotations

__all__ = ["NETWORK_SUPPORT", "unsupported_network"]

#: the network: settings each layout of the plain-torch HIPNN (tsmlip.core.hipnn) computes, the one statement of what
#: it supports: ``plain`` is one model's network (tsmlip export, LAMMPS, TorchSim), ``stacked`` the stacked layout
#: (tsmlip.core.hipnn_stack: the fast training engine and the stacked liquid; the one-hot species are the input of
#: its one interaction layer). Checked when the workflow is planned (tsmlip.config.validate) and by each user
#: (tsmlip.core.hipnn.check_supported); kept here so that planning imports no torch.
NETWORK_SUPPORT = {
    "plain": (("l_max", (1,)), ("sensitivity_type", ("inverse",)), ("resnet", (True, False))),
    "stacked": (("l_max", (1,)), ("n_interaction_layers", (1,)), ("sensitivity_type", ("inverse",)),
                ("resnet", (True, False))),
}


def unsupported_network(network_cfg: dict, layout: str) -> tuple[str, str] | None:
    """(key, why) of the first setting of :data:`NETWORK_SUPPORT` that ``network_cfg`` departs from (a value equal
    in type and value is supported), ``why`` as "computes 1 only (got 2)"; None when ``layout`` computes it."""
    for key, allowed in NETWORK_SUPPORT[layout]:
        got = network_cfg.get(key)
        if not any(type(got) is type(a) and got == a for a in allowed):
            return key, f"computes {' or '.join(map(repr, allowed))} only (got {got!r})"
    return None
