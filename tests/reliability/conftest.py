"""Every reliability test starts with no default client and leaves none behind.

The fixtures are the SDK tests' own, shared rather than copied.
"""

from tests.sdk.conftest import fresh_sdk, rec

__all__ = ["fresh_sdk", "rec"]
