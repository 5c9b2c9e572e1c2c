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
    └── VerificationFailed      a bundle failed one or more verification steps
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
