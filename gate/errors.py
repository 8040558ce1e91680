"""The gate's error tree: every exception the gate raises on purpose is a ``GateError``.

    GateError                               catch this for "one of ours"; anything else is a bug
    ├── XrpcError (500 InternalServerError) an answer to the client: status, XRPC name, safe message
    │   ├── ClientError (400)
    │   │   ├── AuthMissing (401)               upload without Authorization: answered unread
    │   │   ├── PayloadTooLarge (413)           Content-Length or decoded size over the limit
    │   │   ├── UnsupportedMediaType (415)      a Content-Encoding the PDS would refuse
    │   │   ├── InvalidRequest (400)            malformed body (bad gzip stream, no body at all) or target
    │   │   │   └── BadRequest                      gate.admin.review_api: a review API body it does not take
    │   │   ├── RequestTimeout (408)            upload body idle too long, or slower than the minimum rate
    │   │   ├── TooManyUploads (429 + Retry-After)   the client IP's concurrent uploads at the limit
    │   │   ├── BlockedUpload (status set by policy)   reject / quarantine answer
    │   │   ├── AuthRequired (401)              gate.api.errors: an API call without a known bearer token
    │   │   ├── Forbidden (403)                 gate.api.errors: a token whose role may not use the API
    │   │   ├── NotFound (404)                  gate.api.errors: no such API endpoint
    │   │   ├── MethodNotAllowed (405)          gate.api.errors: the endpoint takes another method
    │   │   └── RateLimited (429 + Retry-After) gate.api.errors: over the token's API rate
    │   ├── Overloaded (503 + Retry-After)      memory budget for buffered uploads exhausted
    │   │   └── ShuttingDown (503 + Retry-After)    the gate is stopping and the body has not arrived
    │   ├── UpstreamFailure (502)               PDS unreachable
    │   │   └── HandshakeFailure                    gate.proxy.handshake: a websocket's, with its cause
    │   ├── UpstreamTimeout (504)               PDS too slow
    │   ├── LogUnavailable (503)                decision log down and policy says reject
    │   ├── EvidenceUnavailable (503)           evidence could not be stored and policy says "unavailable"
    │   ├── ApiUnavailable (503 + Retry-After)  gate.api.errors: Postgres cannot authenticate or audit a call
    │   └── LabelsUnavailable (503 NotReady)    gate.labels.xrpc: Postgres cannot serve labels now
    ├── ConfigError                         something the operator configured is wrong: start-up stops,
    │   │                                   a reload keeps the last good
    │   ├── SettingsError                       gate.settings (also a ValueError)
    │   ├── PolicyError                         gate.policy.load (also a ValueError)
    │   ├── BankError                           gate.matching.local: the banks directory
    │   ├── BankFileError                       gate.matching.bank_file: one bank file
    │   ├── KeyringError                        gate.quarantine.keys: missing, unreadable or unsafe
    │   │   └── MissingEvidenceKey              the policy keeps evidence and no key is configured
    │   ├── TokenError                          gate.admin.tokens: a token name or legacy file line
    │   └── LabelerKeyError                     gate.labels.key: missing, unreadable or unsafe
    ├── Unavailable                         a part the gate relies on cannot answer now; asked again later
    │   ├── StoreUnavailable                    gate.store.pool: Postgres, for evidence, audit, tokens,
    │   │                                       allowlist and takedowns
    │   ├── MigrationError                      gate.store.migrate: the schema cannot be brought up to date
    │   ├── EmbeddedPostgresError               gate.store.embedded (also an OSError)
    │   ├── SpoolError                          gate.store.spool (also an OSError)
    │   ├── HmaCallError                        gate.matching.hma_client: one HMA call, with its kind
    │   ├── HmaBusy                             gate.matching.hma_queue: HMA cannot answer an upload's
    │   │                                       lookups in time at its pace; they are not sent
    │   ├── PdsActionError                      gate.pds_admin: the PDS's admin API refused or is unreachable
    │   ├── PdsAnswerError                      gate.proxy.lane: a passthrough GET's answer cannot be read
    │   │   ├── PdsClosed                           the PDS closed before the answer's head (sent once more)
    │   │   ├── PdsMalformed                        not an HTTP answer (as aiohttp's client would refuse it)
    │   │   └── PdsCut                              the connection ended, or went wrong, in the body
    │   ├── BlobUnavailable                     gate.blob_fetch: a stored blob (or its repo) cannot be read
    │   └── WorkerDied                          gate.hashing.pool: a hashing process ended mid-job
    │       └── Malformed                           it answered something that is not an answer (killed)
    ├── Refusal                             the gate will not do this; the message says why
    │   ├── EvidenceNotFound                    no such item, or its bytes are gone (also a LookupError)
    │   ├── InvalidTransition                   the item's state or legal hold forbids it (also a ValueError)
    │   ├── EvidenceCapped                      the uploader's hourly evidence cap is reached
    │   ├── NoAllowlistBank                     a release needs an allowlist bank in the policy
    │   ├── TakedownRefused                     unverified DID, daily cap, PDS actions off or failed
    │   ├── Refused                             gate.auth.offline: one offline credential check failed
    │   ├── Unresolvable                        gate.firehose.identity: an author's DID gives no PDS to ask
    │   ├── FetchFailed                         gate.firehose.fetch: a blob's PDS would not serve it
    │   └── FirehoseRefused                     gate.firehose.watcher: the firehose refused us (FutureCursor)
    ├── DecodeFailure                       gate.hashing.decode: no decoder could read the image
    ├── ImagehashMissing                    gate.hashing.perceptual: pHash/dHash without the extra
    └── EvidenceUnreadable                  gate.quarantine.keys: a sealed item does not open

Each class lives beside the code that raises it and names its branch here as its base. One middleware
(``gate.app``) turns an ``XrpcError`` into ``{"error": name, "message": msg}`` JSON. Anything else that
reaches it — another ``GateError`` included, whose message may carry internals — becomes a bare 500.
"""

from __future__ import annotations


class GateError(Exception):
    """The root: every error the gate raises on purpose."""


class ConfigError(GateError):
    """Something the operator configured (a setting, the policy, a bank, the keyring) is wrong."""


class Unavailable(GateError):
    """A part the gate relies on (Postgres, HMA, the PDS, a hashing process) cannot answer now."""


class Refusal(GateError):
    """The gate will not do what was asked; the message says why and is safe to show an operator."""


class XrpcError(GateError):
    """An answer to the client. The message is shown to the client: it never carries internals."""

    status: int = 500
    error: str = "InternalServerError"
    default_message: str = "Internal Server Error"
    # The gate stopped reading this request's body: the answer says "Connection: close".
    closes_connection: bool = False
    # Seconds after which the client may ask again (429s and 503s): the answer says "Retry-After".
    retry_after: int | None = None

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.headers = headers or {}
        if self.retry_after is not None:
            self.headers = {**self.headers, "Retry-After": str(self.retry_after)}
        super().__init__(self.message)

    def body(self) -> dict[str, str]:
        return {"error": self.error, "message": self.message}


class ClientError(XrpcError):
    status = 400
    error = "InvalidRequest"
    default_message = "Invalid request"


class AuthMissing(ClientError):
    status = 401
    error = "AuthMissing"
    default_message = "Authentication Required"  # the PDS's own words


class PayloadTooLarge(ClientError):
    status = 413
    error = "PayloadTooLarge"
    default_message = "request entity too large"  # the PDS's own words


class UnsupportedMediaType(ClientError):
    status = 415
    error = "UnsupportedMediaType"
    default_message = "unsupported content-encoding"  # the PDS's own words


class InvalidRequest(ClientError):
    pass


class RequestTimeout(ClientError):
    status = 408
    error = "RequestTimeout"
    default_message = "The upload body did not arrive in time"
    closes_connection = True


class TooManyUploads(ClientError):
    """Answered before the body is read: the PDS's own name and shape for a rate limit."""

    status = 429
    error = "RateLimitExceeded"
    default_message = "Too many uploads in progress from this address"
    retry_after = 5


class BlockedUpload(ClientError):
    """The policy's answer to a rejected or quarantined upload; status/name/message come from the policy."""

    def __init__(
        self, status: int, error: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, headers=headers)
        self.status = status
        self.error = error


class Overloaded(XrpcError):
    status = 503
    error = "Overloaded"
    default_message = "The upload gate is busy; retry shortly"
    retry_after = 2


class ShuttingDown(Overloaded):
    default_message = "The upload gate is shutting down; retry shortly"
    closes_connection = True
    retry_after = 5


class UpstreamFailure(XrpcError):
    status = 502
    error = "UpstreamFailure"
    default_message = "The PDS could not be reached"


class UpstreamTimeout(XrpcError):
    status = 504
    error = "UpstreamTimeout"
    default_message = "The PDS did not answer in time"


class LogUnavailable(XrpcError):
    status = 503
    error = "Overloaded"
    default_message = "Uploads are paused: the decision log is unavailable"
    retry_after = 30


class EvidenceUnavailable(XrpcError):
    """A blocked upload whose evidence could not be stored: the client is asked to retry later, so the
    evidence can be captured then (``[evidence] on_store_failure = "unavailable"``)."""

    status = 503
    error = "Overloaded"
    default_message = "The upload could not be processed right now; retry shortly"
    retry_after = 30
