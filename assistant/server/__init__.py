"""``haven-cli serve``: an OpenAI-compatible HTTP API on the loaded model, with Haven's safety system on
every request (docs/server.md).

* ``protocol``: the chat-completions wire format (:class:`ChatRequest`, responses, stream chunks, errors);
* ``service``: :class:`ApiService`, the queue and the worker thread running each request as a chat turn;
* ``routes``: the Starlette application (auth, JSON and server-sent events, disconnects);
* ``run``: :class:`ApiServer`, the socket and uvicorn; the address rule;
* ``token``: :class:`ApiToken`, the bearer token.
"""

from assistant.server.protocol import ApiError, ChatRequest, parse_chat_request
from assistant.server.run import ApiServer, exposure_warning, is_loopback
from assistant.server.service import ApiService, StopScanner
from assistant.server.token import API_TOKEN_ENV, ApiToken

__all__ = [
    "API_TOKEN_ENV", "ApiError", "ApiServer", "ApiService", "ApiToken", "ChatRequest", "StopScanner",
    "exposure_warning", "is_loopback", "parse_chat_request",
]
