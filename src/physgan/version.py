"""physgan's version, one place for the package, its wheel and the files it writes."""

__version__ = "0.1.0"
