//! Exit statuses of the `carvectl` binary and gRPC code names.
//!
//! Invariant: an RPC failing with gRPC code N always exits with `10 + N`, so scripts can tell
//! NOT_FOUND (15) from ALREADY_EXISTS (16) from a dead socket (1) without parsing stderr.

use tonic::Code;

/// The command succeeded.
pub const EXIT_OK: u8 = 0;
/// No connection (socket missing, refused, handshake failed) or a local I/O failure.
pub const EXIT_TRANSPORT: u8 = 1;
/// Bad command line: unknown flag, bad value, duplicate key, unreadable secrets file.
pub const EXIT_USAGE: u8 = 2;
/// `identity probe` answered, but with `ready: false`.
pub const EXIT_NOT_READY: u8 = 3;
/// `orphans` found orphan volumes or PersistentVolumes without their volume.
pub const EXIT_FOUND: u8 = 4;
/// An RPC failed with gRPC code N: the exit status is `EXIT_RPC_BASE + N` (11..=26).
pub const EXIT_RPC_BASE: u8 = 10;

/// The exit status for an RPC that failed with `code`.
pub fn exit_code_for(code: Code) -> u8 {
    EXIT_RPC_BASE + code as u8
}

/// The canonical gRPC name of `code`, as the CSI spec writes it (`NOT_FOUND`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The `EXIT STATUS` section of `carvectl --help`.
pub const EXIT_STATUS_HELP: &str = "\
EXIT STATUS:
  0       success
  1       transport: cannot connect to the endpoint, or a local I/O failure
  2       usage: bad flags or values, duplicate keys, unreadable secrets file
  3       identity probe: the plugin answered ready=false
  4       orphans: the report found something
  10+N    the RPC failed with gRPC code N (printed as `error: <CODE>: <message>`):
          11 CANCELLED          17 PERMISSION_DENIED    23 INTERNAL
          12 UNKNOWN            18 RESOURCE_EXHAUSTED   24 UNAVAILABLE
          13 INVALID_ARGUMENT   19 FAILED_PRECONDITION  25 DATA_LOSS
          14 DEADLINE_EXCEEDED  20 ABORTED              26 UNAUTHENTICATED
          15 NOT_FOUND          21 OUT_OF_RANGE
          16 ALREADY_EXISTS     22 UNIMPLEMENTED";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_documented_statuses() {
        assert_eq!(exit_code_for(Code::NotFound), 15);
        assert_eq!(exit_code_for(Code::AlreadyExists), 16);
        assert_eq!(exit_code_for(Code::Unauthenticated), 26);
        for n in 1..=16 {
            let code = Code::from_i32(n);
            let line = format!("{} {}", 10 + n, code_name(code));
            assert!(EXIT_STATUS_HELP.contains(&line), "help lacks {line:?}");
        }
    }
}
