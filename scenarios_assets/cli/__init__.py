"""The command line (``scenarios``): flags -> ``service.GenerationRequest``, printing; ``scenarios builds`` and
``scenarios load-market-data``."""
