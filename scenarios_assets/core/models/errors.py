"""The error types: bad input (configuration, flags and market data), and data that cannot calibrate a model."""


class ScenarioInputError(ValueError):
    """Bad input that the user must fix. The message names the input and says what is wrong."""


class CalibrationError(ValueError):
    """The data cannot calibrate the model (reported as a skipped family, not raised to the user).

    Raised by the calibration engines (``core.engines.calibration``, ``core.engines.garch``); defined here
    so every engine can raise it without importing another.
    """
