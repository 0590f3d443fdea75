"""The project's exceptions: one root and a few named kinds.

Bad *input records* are never raised: they become dead letters. These are for
bad configuration and broken infrastructure, which must stop the job loudly.
"""


class CrmTriggersError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(CrmTriggersError):
    """A setting is missing or has a value the job cannot run with."""


class DeliveryError(CrmTriggersError):
    """An output record could not be written and retrying will not help."""


class SourceError(CrmTriggersError):
    """An input could not be read (a missing topic, a lost offset, a fatal client error)."""
