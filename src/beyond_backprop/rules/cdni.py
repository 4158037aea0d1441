"""Conditional DNI: synthetic gradients that also see the label."""

from __future__ import annotations

from dataclasses import dataclass

from beyond_backprop.rules.dni import DNI
from beyond_backprop.rules.registry import register_rule


@register_rule("cdni", "DNI whose synthesizers also see the one-hot label (cDNI)")
class ConditionalDNI(DNI):
    """Conditional Decoupled Neural Interfaces (Jaderberg et al., arXiv 1608.05343,
    Section 3.1, "cDNI"): DNI where every synthesizer M_k(h_k, y) also receives the one-hot
    label of the example, which makes the gradient of the task loss far easier to predict
    (for a linear top layer, the true gradient is an affine function of (h, y)).

    The same rule as ``dni`` with ``conditioned`` on by default; every option is DNI's.

    Deviations: as ``dni``.
    """

    @dataclass(frozen=True)
    class Config(DNI.Config):
        """Options of cDNI: DNI's, with the label conditioning on."""

        conditioned: bool = True
        """Condition every synthesizer on the one-hot label (on for cDNI)."""
