"""The registry of scenario families: one entry per family, the only place a new family plugs in.

The Dagster layer builds one severity-partitioned asset per entry and the CLI maps ``--type`` onto
entries, so adding a family here adds it everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scenarios_assets.core.families.bootstrap import stream_bootstrap
from scenarios_assets.core.families.context import GenerationContext
from scenarios_assets.core.families.historical import generate_historical
from scenarios_assets.core.families.monte_carlo import stream_monte_carlo
from scenarios_assets.core.families.regime import generate_regimes
from scenarios_assets.core.families.stress import generate_stress
from scenarios_assets.core.models.config import ScenarioConfig, section_hash
from scenarios_assets.core.models.scenario import ScenarioSet, ScenarioStream


@dataclass(frozen=True)
class FamilySpec:
    """One scenario family: everything the layers above derive from it (asset, ``--type`` values, checks,
    footprint).

    Attributes
    ----------
    family : str
        The ``family`` field of each scenario.
    asset_name : str
        Its asset key is ``scenarios/<asset_name>``.
    config_section : str
        Its section ``scenarios_pipeline.generation.<config_section>`` (what :func:`family_config_hash` hashes;
        Monte Carlo and bootstrap share ``stochastic``).
    cli_types : tuple of str
        ``--type`` values that select it (besides ``all``).
    generate : callable
        ``GenerationContext -> ScenarioSet | ScenarioStream``: a small set whole, or a stream of chunks.
    description : str
        One sentence for the asset's description.
    simulated : bool
        Its returns are drawn (Monte Carlo, bootstrap): paths by the thousand, in chunks, whose tails and
        correlation structure are checked (``library.validation``) and whose memory and disk grow with the
        path count (``library.footprint``); otherwise a replay or a defined shock over the panel.
    set_checks : tuple of str
        The family-specific set checks (names of ``library.validation.SET_CHECKS`` marked ``per_family``) it
        gets besides the common ones.
    """

    family: str
    asset_name: str
    config_section: str
    cli_types: tuple[str, ...]
    generate: Callable[[GenerationContext], ScenarioSet | ScenarioStream]
    description: str
    simulated: bool = False
    set_checks: tuple[str, ...] = ()


FAMILY_SPECS: dict[str, FamilySpec] = {
    spec.family: spec
    for spec in [
        FamilySpec(
            "historical", "historical", "historical", ("historical",), generate_historical,
            "Named historical events and (optionally) full cycles, replayed at three severities.",
            set_checks=("events_accounted",),
        ),
        FamilySpec(
            "regime", "regimes", "regime", ("regime",), generate_regimes,
            "Bull, bear, high-volatility and ranging segments of the S&P 500 (and configured indices), replayed "
            "at three severities.",
            set_checks=("regime_types_found",),
        ),
        FamilySpec(
            "monte_carlo", "monte_carlo", "stochastic", ("stochastic", "monte_carlo"), stream_monte_carlo,
            "Monte Carlo paths: GJR-GARCH(1,1,1)-t (default), GBM or filtered historical simulation with correlated "
            "innovations, calibrated per severity.",
            simulated=True, set_checks=("statistical_validity", "correlation_stability"),
        ),
        FamilySpec(
            "bootstrap", "bootstrap", "stochastic", ("stochastic", "bootstrap"), stream_bootstrap,
            "Circular or stationary block bootstrap of whole historical dates; severe/extreme draw high-volatility "
            "blocks.",
            simulated=True, set_checks=("statistical_validity", "correlation_stability"),
        ),
        FamilySpec(
            "stress", "stress", "stress", ("stress",), generate_stress,
            "Four parametric and twelve named stress tests from the last market state, at three calibrated severities.",
            set_checks=("events_accounted",),
        ),
    ]
}

# Derived from the registry: the family names in registry order, and the CLI's --type values ("all", then
# each spec's types in registry order, once).
FAMILIES: tuple[str, ...] = tuple(FAMILY_SPECS)
CLI_TYPES: tuple[str, ...] = ("all", *dict.fromkeys(t for spec in FAMILY_SPECS.values() for t in spec.cli_types))


def families_for_type(type_: str) -> list[str]:
    """Registered families selected by a ``--type`` value (one of :data:`CLI_TYPES`), in registry order.

    ``all`` selects every family; ``stochastic`` both Monte Carlo and bootstrap (each spec's ``cli_types``).
    Returns an empty list for a value no spec lists.

    Parameters
    ----------
    type_ : str
        A ``--type`` value.

    Returns
    -------
    list of str
        Family names (keys of ``FAMILY_SPECS``).
    """
    return [f for f, spec in FAMILY_SPECS.items() if type_ == "all" or type_ in spec.cli_types]


def enabled(spec: FamilySpec, config: dict) -> bool:
    """Whether the validated config enables the family (``generation.<section>.enabled``).

    For Monte Carlo and bootstrap this is ``generation.stochastic.enabled``; their own
    ``stochastic.monte_carlo.enabled`` and ``stochastic.bootstrap.enabled`` are checked by their generators
    (:func:`scenarios_assets.core.families.stochastic.disabled_set`).

    Parameters
    ----------
    spec : FamilySpec
        The family.
    config : dict
        The validated ``scenarios_pipeline`` mapping.

    Returns
    -------
    bool

    Raises
    ------
    KeyError
        ``config`` lacks a key of the typed config (``ScenarioConfig.from_mapping``).
    """
    return bool(getattr(ScenarioConfig.from_mapping(config).generation, spec.config_section).enabled)


def family_config_hash(family: str, config: dict) -> str:
    """The hash of the config a family's output depends on (config.section_hash of its section).

    Parameters
    ----------
    family : str
        A key of ``FAMILY_SPECS``.
    config : dict
        The ``scenarios_pipeline`` mapping.

    Returns
    -------
    str
        16 hex digits: the SHA-256 of ``seed``, ``data`` and ``generation.<section>`` as canonical JSON.

    Raises
    ------
    KeyError
        An unknown ``family``, or ``config`` lacks ``seed``, ``data`` or the family's section.
    """
    return section_hash(config, FAMILY_SPECS[family].config_section)


def family_stream(family: str, ctx: GenerationContext) -> ScenarioStream:
    """The scenarios of one family at ``ctx.severity`` as a stream (a disabled family: an empty one).

    Parameters
    ----------
    family : str
        A key of ``FAMILY_SPECS``.
    ctx : GenerationContext
        What the generator reads.

    Returns
    -------
    ScenarioStream
        The generator's stream, or its whole set as a stream of one chunk; a family whose section is off
        gives an empty stream with metadata ``{"disabled": True}``.

    Raises
    ------
    KeyError
        An unknown ``family``.
    ScenarioInputError
        Bad input found by the family's generator.
    """
    spec = FAMILY_SPECS[family]
    if not enabled(spec, ctx.config):
        return ScenarioSet(family, ctx.severity, [], ctx.market.data_version, ctx.config_hash,
                           metadata={"disabled": True}).stream()
    produced = spec.generate(ctx)
    return produced.stream() if isinstance(produced, ScenarioSet) else produced
