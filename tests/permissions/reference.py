"""Compatibility path: the reference model lives in `tests/support/reference.py`.

Kept only for the engine and impact property tests that still import it from here; import
`tests.support.reference` in new code.
"""

from tests.support.reference import *  # noqa: F403
