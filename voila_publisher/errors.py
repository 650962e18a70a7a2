"""The one error type of publishing that reaches a person: HTTP status, short reason, message.

Both the single-user server and the public host answer it as ``{"message", "reason"}``.
"""


class PublishError(Exception):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
