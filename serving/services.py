"""The resources one app instance works with, created once in the lifespan and handed to requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from core.settings import Settings
from serving.auth import ApiKeyStore
from serving.config import ServeOptions
from serving.metrics import Metrics
from serving.model_holder import ModelHolder
from serving.prediction_log import PredictionLog


@dataclass
class Services:
    settings: Settings
    options: ServeOptions
    engine: Engine
    keys: ApiKeyStore
    log: PredictionLog
    metrics: Metrics
    holder: ModelHolder
    #: the marketplace the service was pointed at (``--data``), or None
    marketplace: Any = None
    #: the sanction workflow's service objects, when it is available
    sanctions: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
