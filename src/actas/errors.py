"""The one error tree of actas.

Every error carries a stable ``code`` (used as CLI diagnostics and, later, as the problem+json type) and a
human message that names the field, rule or position at fault::

    ActasError
    ├── MalformedError          bytes or text that do not parse (field, position, reason)
    │   ├── NonCanonicalError   parses, but is not the canonical encoding
    │   └── DefinitionError     an election definition that breaks a structural rule
    ├── KeyFormatError          a key string that is not a valid C2SP key
    ├── SignatureError          a signature that does not verify
    ├── EnrollmentError         an acta signed by a key not enrolled for its mesa
    ├── RuleError               an acta that breaks an arithmetic rule of severity "error"
    ├── ProofError              a Merkle inclusion or consistency proof that does not verify
    ├── StorageError            the log store cannot be opened, read or written
    ├── FetchError              a published file cannot be read (missing file, HTTP error)
    ├── VerificationFailed      a bundle failed one or more verification steps
    │   └── EquivocationError   two checkpoints of one size with different roots, both signed
    ├── ConflictError           a different acta for a mesa that already has one (logged, flagged)
    ├── NotFoundError           no such leaf, mesa or area
    ├── TooLargeError           a request body or file above its size limit
    ├── RateLimitedError        too many requests from one client address or device key
    └── UnavailableError        the service cannot take the request now (retry later)

The service maps each code to an HTTP status in one table (actas.service.problems).
"""

from __future__ import annotations


class ActasError(Exception):
    """Root of every error actas raises on purpose."""

    code = "actas-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class MalformedError(ActasError):
    """Input that does not parse; the message names field, position and reason."""

    code = "malformed"


class NonCanonicalError(MalformedError):
    """Input that parses but whose canonical re-encoding differs."""

    code = "non-canonical"


class DefinitionError(MalformedError):
    """An election definition that breaks a structural rule (message starts with the JSON path)."""

    code = "invalid-definition"


class KeyFormatError(ActasError):
    """A key string that is not a valid C2SP signed-note key."""

    code = "bad-key"


class SignatureError(ActasError):
    """A signature that does not verify."""

    code = "bad-signature"


class EnrollmentError(ActasError):
    """An acta signed by a device key that is not enrolled for its mesa."""

    code = "unenrolled-key"


class RuleError(ActasError):
    """An acta that breaks an arithmetic rule of severity error."""

    code = "rule-broken"

    def __init__(self, message: str, rules: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.rules = rules


class ProofError(ActasError):
    """A Merkle proof that does not verify."""

    code = "bad-proof"


class StorageError(ActasError):
    """The log store cannot be opened, read or written."""

    code = "storage"


class FetchError(ActasError):
    """A published file cannot be read."""

    code = "fetch"


class VerificationFailed(ActasError):
    """A bundle failed one or more verification steps."""

    code = "verification-failed"


class EquivocationError(VerificationFailed):
    """Two checkpoints of the same size with different roots, both signed by the log: a forked log."""

    code = "equivocation"


class ConflictError(ActasError):
    """A different acta for a mesa and contest that already has one: logged and flagged, never replacing it."""

    code = "conflict"

    def __init__(self, message: str, leaf_hash: bytes, existing: bytes) -> None:
        super().__init__(message)
        self.leaf_hash = leaf_hash
        self.existing = existing


class NotFoundError(ActasError):
    """No such leaf, mesa or area."""

    code = "not-found"


class TooLargeError(ActasError):
    """A request body or file above its size limit."""

    code = "too-large"


class RateLimitedError(ActasError):
    """Too many requests from one client address or device key."""

    code = "rate-limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnavailableError(ActasError):
    """The service cannot take the request now; retrying later is expected to work."""

    code = "unavailable"
