"""Errors raised for bad input data."""


class DataError(ValueError):
    """Bad input data: the message names the offending file (or argument) and the rule broken.

    A subclass of ``ValueError`` so callers that catch ``ValueError`` keep working.
    """

    def __init__(self, where, rule):
        self.where = str(where)
        self.rule = rule
        super().__init__(f"{self.where}: {rule}")
