"""What every call to Google Cloud's Vertex AI API shares: the SDK check, and its failures turned into
one line naming the fix (credentials, a refusal by the service, a missing resource)."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

from text2sql.errors import ConfigError, MissingExtraError, Text2SQLError, first_line

NO_CREDENTIALS = (
    "no Google Cloud credentials: run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
)


def require_sdk(feature: str = "Vertex AI") -> None:
    """MissingExtraError naming `text2sql[vertex]` when google-cloud-aiplatform is not installed."""
    try:
        importlib.import_module("google.cloud.aiplatform_v1")
    except ImportError:
        raise MissingExtraError(feature, "google-cloud-aiplatform", "vertex") from None


def valid_as(type_name: str, fields: dict[str, Any], problem: str, hint: str = "") -> bool:
    """Build `aiplatform_v1.types.<type_name>(**fields)` when the SDK is installed, so that unknown
    fields and values fail here instead of at the service: ConfigError `<problem>: <why>[; <hint>]`.
    False when the SDK is not installed (nothing checked)."""
    try:
        from google.cloud.aiplatform_v1 import types
    except ImportError:
        return False
    try:
        getattr(types, type_name)(**fields)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{problem}: {first_line(exc)}" + (f"; {hint}" if hint else "")) from None
    return True


@contextlib.contextmanager
def api_call(refused: str, hint: str, *, not_found: str | None = None) -> Iterator[None]:
    """Run a Vertex AI call: no credentials, a NotFound (when `not_found` says what it means) or any
    other refusal becomes one Text2SQLError: `<refused>: <the service's message>; <hint>`."""
    from google.api_core import exceptions as api_errors
    from google.auth import exceptions as auth_errors

    try:
        yield
    except auth_errors.DefaultCredentialsError:
        raise Text2SQLError(NO_CREDENTIALS) from None
    except auth_errors.GoogleAuthError as exc:  # expired or revoked credentials, a refused token
        raise Text2SQLError(f"Google Cloud refused the credentials ({_message(exc)}); {NO_CREDENTIALS}") from None
    except api_errors.NotFound as exc:
        if not_found is None:
            raise Text2SQLError(f"{refused}: {_message(exc)}; {hint}") from None
        raise Text2SQLError(not_found) from None
    except api_errors.GoogleAPICallError as exc:
        raise Text2SQLError(f"{refused}: {_message(exc)}; {hint}") from None


def _message(exc: BaseException) -> str:
    return (str(getattr(exc, "message", "") or first_line(exc)).splitlines() or [""])[0]
