"""What each feature means, in words: the reason templates the model's explanations are built from."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureDoc:
    """One feature's documentation.

    ``template`` is a ``str.format`` template with the field ``value`` (e.g.
    ``"{value:.0f} counterfeit complaints in 30 days"``); ``higher_is_riskier`` says in which direction
    the feature points at counterfeiting (False: a lower value is the suspicious one, e.g. the price
    ratio to the brand's reference price). ``group`` is the builder that makes it.
    """

    name: str
    template: str
    higher_is_riskier: bool
    group: str
    description: str = ""

    def reason(self, value: float) -> str:
        """The template filled with ``value`` (``"no data"`` wording for NaN)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return f"{self.name}: no data"
        return self.template.format(value=float(value))
