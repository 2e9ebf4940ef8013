//! The domain error every layer returns, and the one table that turns it into a gRPC status.
//!
//! OS layers (LVM, LIO, iSCSI, mounts) build [`Error`]s with a [`Kind`] that says what went wrong
//! in storage terms; only [`Error::into_status`] (and `From<Error> for Status`) knows gRPC codes.
//! Messages must never contain secrets: command errors carry redacted argv and scrubbed stderr.

use std::fmt;

/// What went wrong, in the vocabulary of the architecture page's error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Missing or malformed field, unsupported capability or parameter.
    InvalidArgument,
    /// Volume, snapshot or node unknown.
    NotFound,
    /// Same name with an incompatible request; re-stage at another path.
    AlreadyExists,
    /// Published to another node in a single-node mode, or another state precondition.
    FailedPrecondition,
    /// Volume group or thin pool full, attach limit reached.
    ResourceExhausted,
    /// Capacity range not satisfiable.
    OutOfRange,
    /// Another operation on the same object is in flight; bad list token.
    Aborted,
    /// An external tool timed out.
    DeadlineExceeded,
    /// A tool is missing, or iscsid or the target cannot be reached.
    Unavailable,
    /// Anything else.
    Internal,
}

/// A domain error: a [`Kind`] and a message fit for an operator (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: Kind,
    message: String,
}

/// Result alias used across Carve.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The operator-facing message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with what was being done (`"export volume x: ..."`).
    #[must_use]
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// The gRPC status for this error: the only place codes are chosen.
    pub fn into_status(self) -> tonic::Status {
        tonic::Status::new(code_for(self.kind), self.message)
    }
}

/// The error table from the architecture page.
pub fn code_for(kind: Kind) -> tonic::Code {
    use tonic::Code;
    match kind {
        Kind::InvalidArgument => Code::InvalidArgument,
        Kind::NotFound => Code::NotFound,
        Kind::AlreadyExists => Code::AlreadyExists,
        Kind::FailedPrecondition => Code::FailedPrecondition,
        Kind::ResourceExhausted => Code::ResourceExhausted,
        Kind::OutOfRange => Code::OutOfRange,
        Kind::Aborted => Code::Aborted,
        Kind::DeadlineExceeded => Code::DeadlineExceeded,
        Kind::Unavailable => Code::Unavailable,
        Kind::Internal => Code::Internal,
    }
}

/// The kind an error of gRPC code `code` was made from: the inverse of [`code_for`], for a
/// client of a Carve service (carve.agent.v1) that answers through this table. `None` for a
/// code the table never produces (OK, CANCELLED, UNKNOWN, UNIMPLEMENTED, ...): those come from
/// the transport or from a peer that is not Carve's.
pub fn kind_for(code: tonic::Code) -> Option<Kind> {
    use tonic::Code;
    Some(match code {
        Code::InvalidArgument => Kind::InvalidArgument,
        Code::NotFound => Kind::NotFound,
        Code::AlreadyExists => Kind::AlreadyExists,
        Code::FailedPrecondition => Kind::FailedPrecondition,
        Code::ResourceExhausted => Kind::ResourceExhausted,
        Code::OutOfRange => Kind::OutOfRange,
        Code::Aborted => Kind::Aborted,
        Code::DeadlineExceeded => Kind::DeadlineExceeded,
        Code::Unavailable => Kind::Unavailable,
        Code::Internal => Kind::Internal,
        _ => return None,
    })
}

impl Error {
    /// The domain error a Carve peer answered as `status`: the same kind and message, so a
    /// remote operation fails exactly as the local one would. A code outside the table
    /// ([`kind_for`]) means the call did not reach a Carve service that answered it (the
    /// connection or TLS handshake failed, the peer is something else): `Unavailable`, which
    /// the CO retries.
    pub fn from_status(status: &tonic::Status) -> Self {
        match kind_for(status.code()) {
            Some(kind) => Self::new(kind, status.message()),
            None => Self::unavailable(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        error.into_status()
    }
}

macro_rules! constructors {
    ($($fn_name:ident => $kind:ident),* $(,)?) => {
        impl Error {$(
            #[doc = concat!("An error of kind [`Kind::", stringify!($kind), "`].")]
            pub fn $fn_name(message: impl Into<String>) -> Self {
                Self::new(Kind::$kind, message)
            }
        )*}
    };
}

constructors! {
    invalid_argument => InvalidArgument,
    not_found => NotFound,
    already_exists => AlreadyExists,
    failed_precondition => FailedPrecondition,
    resource_exhausted => ResourceExhausted,
    out_of_range => OutOfRange,
    aborted => Aborted,
    deadline_exceeded => DeadlineExceeded,
    unavailable => Unavailable,
    internal => Internal,
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::internal(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn table_matches_the_architecture_page() {
        let table = [
            (Error::invalid_argument("x"), Code::InvalidArgument),
            (Error::not_found("x"), Code::NotFound),
            (Error::already_exists("x"), Code::AlreadyExists),
            (Error::failed_precondition("x"), Code::FailedPrecondition),
            (Error::resource_exhausted("x"), Code::ResourceExhausted),
            (Error::out_of_range("x"), Code::OutOfRange),
            (Error::aborted("x"), Code::Aborted),
            (Error::deadline_exceeded("x"), Code::DeadlineExceeded),
            (Error::unavailable("x"), Code::Unavailable),
            (Error::internal("x"), Code::Internal),
        ];
        for (error, code) in table {
            let status: tonic::Status = error.into();
            assert_eq!(status.code(), code);
            assert_eq!(status.message(), "x");
        }
    }

    #[test]
    fn a_status_of_the_table_comes_back_as_its_kind_and_others_are_unavailable() {
        for kind in [
            Kind::InvalidArgument,
            Kind::NotFound,
            Kind::AlreadyExists,
            Kind::FailedPrecondition,
            Kind::ResourceExhausted,
            Kind::OutOfRange,
            Kind::Aborted,
            Kind::DeadlineExceeded,
            Kind::Unavailable,
            Kind::Internal,
        ] {
            let error = Error::new(kind, "why");
            assert_eq!(Error::from_status(&error.clone().into_status()), error);
        }
        for code in [
            Code::Unknown,
            Code::Cancelled,
            Code::Unimplemented,
            Code::Unauthenticated,
        ] {
            let error = Error::from_status(&tonic::Status::new(code, "transport"));
            assert_eq!(error.kind(), Kind::Unavailable, "{code:?}");
            assert!(error.message().contains("transport"), "{error}");
        }
    }

    #[test]
    fn context_prefixes_the_message_and_keeps_the_kind() {
        let error = Error::not_found("no such LV").context("delete volume v1");
        assert_eq!(error.kind(), Kind::NotFound);
        assert_eq!(error.to_string(), "delete volume v1: no such LV");
    }
}
