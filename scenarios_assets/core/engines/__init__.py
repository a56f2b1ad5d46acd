"""Engines: the numerical methods the families are built from, pure functions of arrays and frames (replay,
calibration, GARCH fits, correlation, simulation, block bootstrap, event projection, regime detection,
stress shocks, tail statistics). No engine knows a family, the config file or the library."""
