"""Secrets from settings or mounted files: one rule for the Kafka password, the Toloka and operator tokens.

A secret is given inline (``..._PASSWORD`` / ``..._TOKEN``, a ``SecretStr``) or as a
file (``..._FILE``, e.g. a Kubernetes secret volume); the file wins when both are
set, so a mounted secret overrides a default baked into an image. Surrounding
whitespace (the trailing newline of ``echo secret > file``) is dropped. An error
names the file, never its content.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from streams.errors import ConfigError


def resolve_secret(value: SecretStr | None, file: Path | None, what: str) -> SecretStr | None:
    """The secret from ``file`` if one is given, else ``value``; None when neither holds one.

    Parameters
    ----------
    value
        The inline secret (may be None or empty).
    file
        A file holding the secret; read each call, so a rotated secret is picked up.
    what
        The setting's name for error messages (e.g. ``"sasl_password_file"``).

    Examples
    --------
    >>> resolve_secret(SecretStr("s3cret"), None, "token")
    SecretStr('**********')
    >>> resolve_secret(SecretStr(""), None, "token") is None
    True
    >>> resolve_secret(None, Path("/nonexistent/token"), "token_file")
    Traceback (most recent call last):
    ...
    streams.errors.ConfigError: cannot read token_file /nonexistent/token: No such file or directory
    """
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(f"cannot read {what} {file}: {error.strerror}") from None
        return SecretStr(text) if text else None
    if value is None or not value.get_secret_value():
        return None
    return value
