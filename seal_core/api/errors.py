"""Errors a user can cause. The CLI prints their message without a traceback."""


class SealError(Exception):
    """A problem with the user's input (config, data, plugin, files): the message says the fix."""


class ConfigError(SealError):
    """A config key or value is not allowed."""


class UnknownConfigKey(ConfigError):
    """A config key that no section (or the chosen component's options) has."""


class PluginError(SealError):
    """A plugin failed to load or registered something that breaks the contract."""


class DataError(SealError):
    """A data file or record cannot be used."""


class EditRejected(Exception):
    """A self-edit that cannot be applied (unparsable, non-finite loss, ...).

    Components raise it with the reason; the engine records reward 0 and the reason in the
    rollout and carries on with the next self-edit.
    """


class NonFiniteLoss(EditRejected):
    """Training on a self-edit produced a NaN or infinite loss."""
