"""Units shared by every model: one place for each convention.

``TRADING_DAYS_PER_YEAR``: sessions per year used to annualise daily figures (volatility x sqrt(252),
drift x 252, returns to the power 252 / days). It is the usual US-equity convention (about 252 NYSE
sessions a year; Hull, *Options, Futures and Other Derivatives*, ch. 15), applied to every symbol, also to
those that trade on more days (crypto): annualised figures compare across symbols on one scale.
"""

TRADING_DAYS_PER_YEAR = 252
