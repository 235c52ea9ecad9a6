"""One exception root; each subclass's docstring is its default message."""

from __future__ import annotations


class LeadImportError(Exception):
    """The import service failed."""

    status = 500

    def __init__(self, message: str | None = None, *, code: str | None = None):
        super().__init__(message or (self.__doc__ or "").strip())
        self.message = str(self)
        self.code = code or type(self).__name__


class JobNotFound(LeadImportError):
    """No such import job in your organization."""

    status = 404


class OrganizationNotFound(LeadImportError):
    """No such organization among yours."""

    status = 404


class IllegalTransition(LeadImportError):
    """The job is not in a status that allows this."""

    status = 409


class JobFailed(LeadImportError):
    """The import cannot go on; the job is marked failed with this message.

    Raised inside a slice for what retrying the message cannot fix (a rejected file,
    a missing object, an invalid mapping).
    """

    status = 422


class BadRequest(LeadImportError):
    """The request is invalid."""

    status = 400


class UnsupportedMediaType(LeadImportError):
    """The request body must be JSON sent as application/json."""

    status = 415


class Unauthorized(LeadImportError):
    """Authentication required."""

    status = 401


class Forbidden(LeadImportError):
    """You are not allowed to do this."""

    status = 403


class QueueUnavailable(LeadImportError):
    """The job could not be queued (QStash did not answer); nothing changed. Try again in a moment."""

    status = 503
