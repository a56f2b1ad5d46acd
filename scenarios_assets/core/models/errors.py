"""The one error type for bad input: configuration, flags and market data."""


class ScenarioInputError(ValueError):
    """Bad input that the user must fix. The message names the input and says what is wrong."""
