"""leanbench: prove or disprove that a smaller model does the job, and show the whole bill.

Importing the package stays lean: torch, transformers and Ray load only when a command needs them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
