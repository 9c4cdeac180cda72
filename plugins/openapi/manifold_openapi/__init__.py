"""Manifold backend type `openapi`: an OpenAPI 3 document's operations as tools, called with httpx2."""

from manifold_openapi.backend import OpenApiBackend, OpenApiConfig, OperationFilter
from manifold_openapi.spec import SpecError

__all__ = ["OpenApiBackend", "OpenApiConfig", "OperationFilter", "SpecError"]
