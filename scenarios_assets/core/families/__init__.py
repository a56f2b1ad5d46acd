"""Scenario families: the registry (``registry.FAMILY_SPECS``) and one module per family, each a pure
function of a ``GenerationContext`` built on the engines. No family module imports another."""
