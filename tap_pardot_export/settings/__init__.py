"""The tap's settings: their schema, the checks, and the typed object a run reads them from.

``schema`` derives the JSON schema from the stream specs; ``messages`` turns the validator's
errors into one line per setting; ``checks`` adds what a schema cannot say (cross-field
checks, the time zone, the run's end); ``config`` reads a validated config into
:class:`~tap_pardot_export.settings.config.Settings` once.
"""
