"""Feature builders: point-in-time seller history, listing/review text, brand and price, linked shops.

The public entry point is :class:`features.pipeline.ShopFeaturePipeline` (see ``docs/features.md``).
"""

from features.docs import FeatureDoc
from features.pipeline import ShopFeaturePipeline

__all__ = ["FeatureDoc", "ShopFeaturePipeline"]
