"""Symbols as a user asks for them against the symbols a source holds (files and PostgreSQL alike)."""

from __future__ import annotations

from scenarios_assets.core.models.errors import ScenarioInputError


def resolve_symbols(requested: list[str], available: list[str], source: str) -> list[str]:
    """The requested symbols as the data spells them: the exact name, else the one name that equals it ignoring
    case (``spx`` -> ``SPX``); duplicates dropped, order kept. Raises ScenarioInputError for a name that matches
    nothing (listing the available ones) or, ignoring case, more than one (``Spx`` with both ``SPX`` and ``spx``)."""
    exact = set(available)
    folded: dict[str, list[str]] = {}
    for name in available:
        folded.setdefault(name.casefold(), []).append(name)
    resolved, unknown, ambiguous = [], [], []
    for name in requested:
        matches = [name] if name in exact else folded.get(name.casefold(), [])
        if len(matches) == 1:
            resolved.append(matches[0])
        elif matches:
            ambiguous.append(f"{name} ({' or '.join(sorted(matches))})")
        else:
            unknown.append(name)
    if unknown:
        raise unknown_symbols_error(unknown, available, source)
    if ambiguous:
        raise ScenarioInputError(f"symbol(s) {', '.join(ambiguous)} of market data '{source}' differ only in case; "
                                 "give the exact name")
    return list(dict.fromkeys(resolved))



def unknown_symbols_error(unknown: list[str], available: list[str], source: str) -> ScenarioInputError:
    return ScenarioInputError(
        f"unknown symbol(s) {', '.join(unknown)} in market data '{source}' (available: {', '.join(available)})"
    )
