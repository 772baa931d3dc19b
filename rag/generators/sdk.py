"""What the two API backends (`openai`, `anthropic`) share: reading a stream, naming a failure.

Both official clients raise the same family of errors (timeout, connection, HTTP status,
malformed response) under their own module, and both stream objects that must be closed.
Each backend keeps only what differs: how a stream event carries text and how an HTTP
error reads. Deliberately absent: retries (the clients do them, `max_retries`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from ..errors import GenerationFailed

__all__ = ["stream_texts", "client_failure"]


def stream_texts(
    events: Iterable, text_of: Callable[[object], str | None], failure: Callable[[Exception], GenerationFailed]
) -> Iterator[str]:
    """The text pieces of a client's stream; a broken stream becomes `failure(exc)`; always closed."""
    try:
        for event in events:
            text = text_of(event)
            if isinstance(text, str) and text:
                yield text
    except GenerationFailed:
        raise
    except Exception as exc:  # the stream broke off, or an event was not JSON
        raise failure(exc) from exc
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def client_failure(
    sdk, exc: Exception, where: str, timeout: float, retries: int, status: Callable[[Exception, str], GenerationFailed]
) -> GenerationFailed:
    """A one-line reason for a client error, after the client's own retries.

    Args:
        sdk: the client module (`openai` or `anthropic`): its error classes are matched.
        where: the server, as the user configured it.
        status: the backend's wording for an HTTP error, given the error and "after N retries".
    """
    tries = f"after {retries} retr{'y' if retries == 1 else 'ies'}"
    if isinstance(exc, sdk.APITimeoutError):
        return GenerationFailed(f"{where} timed out after {timeout:g} s ({tries})")
    if isinstance(exc, sdk.APIConnectionError):
        return GenerationFailed(f"could not connect to {where} ({tries})")
    if isinstance(exc, sdk.APIStatusError):
        return status(exc, tries)
    if isinstance(exc, sdk.APIResponseValidationError):
        return GenerationFailed(f"{where} sent a malformed reply")
    if isinstance(exc, ValueError):  # a body that is not JSON (a proxy's HTML error page, say)
        return GenerationFailed(f"{where} sent a malformed reply (not JSON)")
    return GenerationFailed(f"{where}: {type(exc).__name__}: {str(exc)[:200]}")
