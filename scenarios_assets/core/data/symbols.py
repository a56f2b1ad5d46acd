"""Symbols as a user asks for them against the symbols a source holds (files and PostgreSQL alike)."""

from __future__ import annotations

from scenarios_assets.core.models.errors import ScenarioInputError


def resolve_symbols(requested: list[str], available: list[str], source: str) -> list[str]:
    """The requested symbols as the data spells them: the exact name, else the one name that equals it ignoring
    case (``spx`` -> ``SPX``); duplicates dropped, order kept. Raises ScenarioInputError for a name that matches
    nothing (listing the available ones) or, ignoring case, more than one (``Spx`` with both ``SPX`` and ``spx``).

    Parameters
    ----------
    requested : list of str
        The names asked for.
    available : list of str
        The names the source holds.
    source : str
        The source's name, for the messages.

    Returns
    -------
    list of str
        The names as the source spells them, duplicates dropped, in request order.

    Raises
    ------
    ScenarioInputError
        For an unknown name (:func:`unknown_symbols_error`), or one matching several names ignoring case.
    """
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
    """The error for requested symbols a source does not hold (returned, for the caller to raise).

    Parameters
    ----------
    unknown : list of str
        The names not found.
    available : list of str
        The names the source holds (all listed in the message).
    source : str
        The source's name.

    Returns
    -------
    ScenarioInputError
        One line naming the unknown symbols, the source and the available ones.
    """
    return ScenarioInputError(
        f"unknown symbol(s) {', '.join(unknown)} in market data '{source}' (available: {', '.join(available)})"
    )
