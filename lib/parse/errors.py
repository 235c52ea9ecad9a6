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


def too_large(size: int, max_mb: int) -> FileRejected | None:
    """The refusal of a file over the import's size limit (IMPORT_MAX_FILE_MB), or None."""
    if size <= max_mb * 1024 * 1024:
        return None
    return FileRejected(
        "file_too_large",
        f"The file is {size / 1024 / 1024:,.0f} MB; an import takes files up to {max_mb} MB. "
        "Split it into smaller files and import each one.",
    )
