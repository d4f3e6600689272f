"""The study schema's plugin-declared parts: importing this package registers the built-in model kinds and
families, steps and task kinds (``leanbench.plugins``)."""

from leanbench.schema import models, steps, tasks  # noqa: F401
