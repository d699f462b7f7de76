"""The test suite: imports go through the package, ``from tests.helpers import ...``."""
