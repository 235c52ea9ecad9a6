"""The parse package's errors: each carries a stable code and a message a person can act on."""


class ParseError(Exception):
    """The file or the mapping cannot be parsed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FileRejected(ParseError):
    """The file cannot be imported as it is; the message says what to change."""


class MappingInvalid(ParseError):
    """A column mapping names an unknown field, uses a field twice or lacks a contact column."""
