"""The registry of scenario families: one entry per family, the only place a new family plugs in.

The Dagster layer builds one severity-partitioned asset per entry and the CLI maps ``--type`` onto
entries, so adding a family here adds it everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scenarios_assets.core.families.context import GenerationContext
from scenarios_assets.core.models.config import section_hash
from scenarios_assets.core.models.scenario import ScenarioSet, ScenarioStream


@dataclass(frozen=True)
class FamilySpec:
    """One scenario family as the Dagster layer and the CLI see it.

    Attributes
    ----------
    family : str
        The ``family`` field of each scenario (the key of ``FAMILY_SPECS``).
    asset_name : str
        The asset key is ``scenarios/<asset_name>``.
    config_section : str
        Its section ``scenarios_pipeline.generation.<config_section>`` (what :func:`family_config_hash` hashes;
        Monte Carlo and bootstrap share ``stochastic``).
    cli_types : tuple of str
        The ``--type`` values that select it (besides ``all``).
    generate : callable ``(GenerationContext) -> ScenarioSet or ScenarioStream``
        Builds the family's scenarios at ``ctx.severity``: a small set whole, or a stream.
    description : str
        One sentence on what the family holds.
    """

    family: str  # the `family` field of each scenario
    asset_name: str  # asset key scenarios/<asset_name>
    config_section: str  # scenarios_pipeline.generation.<section>
    cli_types: tuple[str, ...]  # --type values that select it (besides `all`)
    generate: Callable[[GenerationContext], ScenarioSet | ScenarioStream]  # a small set whole, or a stream
    description: str


def _historical(ctx: GenerationContext) -> ScenarioSet:
    from scenarios_assets.core.families.historical import generate_historical

    return generate_historical(ctx)


def _regimes(ctx: GenerationContext) -> ScenarioSet:
    from scenarios_assets.core.families.regime import generate_regimes

    return generate_regimes(ctx)


def _stress(ctx: GenerationContext) -> ScenarioSet:
    from scenarios_assets.core.families.stress import generate_stress

    return generate_stress(ctx)


def _monte_carlo(ctx: GenerationContext) -> ScenarioStream:
    from scenarios_assets.core.families.monte_carlo import stream_monte_carlo

    return stream_monte_carlo(ctx)


def _bootstrap(ctx: GenerationContext) -> ScenarioStream:
    from scenarios_assets.core.families.bootstrap import stream_bootstrap

    return stream_bootstrap(ctx)


FAMILY_SPECS: dict[str, FamilySpec] = {
    spec.family: spec
    for spec in [
        FamilySpec(
            "historical", "historical", "historical", ("historical",), _historical,
            "Named historical events and (optionally) full cycles, replayed at three severities.",
        ),
        FamilySpec(
            "regime", "regimes", "regime", ("regime",), _regimes,
            "Bull, bear, high-volatility and ranging segments of the S&P 500 (and configured indices), replayed "
            "at three severities.",
        ),
        FamilySpec(
            "monte_carlo", "monte_carlo", "stochastic", ("stochastic", "monte_carlo"), _monte_carlo,
            "Monte Carlo paths: GJR-GARCH(1,1,1)-t (default), GBM or filtered historical simulation with correlated "
            "innovations, calibrated per severity.",
        ),
        FamilySpec(
            "bootstrap", "bootstrap", "stochastic", ("stochastic", "bootstrap"), _bootstrap,
            "Circular or stationary block bootstrap of whole historical dates; severe/extreme draw high-volatility "
            "blocks.",
        ),
        FamilySpec(
            "stress", "stress", "stress", ("stress",), _stress,
            "Four parametric and twelve named stress tests from the last market state, at three calibrated severities.",
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
    """Whether the validated config enables the family (``generation.<section>.enabled``, default true).

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
        ``config`` lacks ``generation`` or the family's section.
    """
    return bool(config["generation"][spec.config_section].get("enabled", True))


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
