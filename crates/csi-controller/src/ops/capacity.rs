//! Sizing a new volume: the capacity range, whole extents, the filesystem's minimum.
//!
//! Invariants: the size is a whole number of extents, at least `required_bytes`, at least the
//! capabilities' minimum, and at most `limit_bytes` when set (else `OutOfRange`): rounded up,
//! or down to the last whole extent under `limit_bytes` when up would pass it; negative
//! values are `InvalidArgument`.

use csi_common::{Error, Result};
use csi_proto::v1::CapacityRange;

/// The size in bytes to create for `range`.
pub fn size_for(
    range: Option<&CapacityRange>,
    extent_size: u64,
    minimum: u64,
    default: u64,
) -> Result<u64> {
    let (required, limit) = range.map_or((0, 0), |r| (r.required_bytes, r.limit_bytes));
    if required < 0 || limit < 0 {
        return Err(Error::invalid_argument(
            "capacity_range must not be negative",
        ));
    }
    let (required, limit) = (required.cast_unsigned(), limit.cast_unsigned());
    if limit != 0 && required > limit {
        return Err(Error::out_of_range(format!(
            "required_bytes {required} exceeds limit_bytes {limit}"
        )));
    }
    let wanted = match (required, limit) {
        (0, 0) => default,
        (0, limit) => default.min(limit),
        (required, _) => required,
    };
    let extent = extent_size.max(1);
    let up = wanted.max(minimum).max(1).div_ceil(extent) * extent;
    if limit == 0 || up <= limit {
        return Ok(up);
    }
    // Rounding up passed `limit_bytes` (spec.md, CapacityRange: "MUST NOT be bigger"): the
    // last whole extent under it still serves the range if it holds `required_bytes` and the
    // filesystem's minimum (a range of `limit_bytes` alone).
    let down = limit / extent * extent;
    if down < required.max(minimum).max(1) {
        return Err(Error::out_of_range(format!(
            "the smallest volume that fits is {up} bytes (whole {extent}-byte extents, \
             filesystem minimum {minimum}), above limit_bytes {limit}"
        )));
    }
    Ok(down)
}

/// Whether an existing volume of `size` bytes satisfies `range`.
pub fn satisfies(size: u64, range: Option<&CapacityRange>) -> bool {
    let (required, limit) = range.map_or((0, 0), |r| (r.required_bytes, r.limit_bytes));
    size >= required.max(0).cast_unsigned() && (limit <= 0 || size <= limit.cast_unsigned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_common::Kind;

    const MIB: u64 = 1 << 20;
    fn range(required: i64, limit: i64) -> CapacityRange {
        CapacityRange {
            required_bytes: required,
            limit_bytes: limit,
        }
    }

    #[test]
    fn rounds_up_to_extents_and_minimums() {
        let ext = 4 * MIB;
        assert_eq!(size_for(Some(&range(1, 0)), ext, 0, 1 << 30).unwrap(), ext);
        assert_eq!(
            size_for(Some(&range(5 * MIB.cast_signed(), 0)), ext, 0, 1).unwrap(),
            8 * MIB
        );
        assert_eq!(size_for(None, ext, 0, 1 << 30).unwrap(), 1 << 30);
        assert_eq!(
            size_for(Some(&range(0, 8 * MIB.cast_signed())), ext, 0, 1 << 30).unwrap(),
            8 * MIB
        );
        assert_eq!(
            size_for(Some(&range(MIB.cast_signed(), 0)), ext, 300 * MIB, 1).unwrap(),
            300 * MIB
        );
        // limit_bytes alone, not a whole number of extents: the last whole extent under it
        // (the default, 1 GiB, would pass it).
        assert_eq!(
            size_for(Some(&range(0, 1_000_000_000)), ext, 0, 1 << 30).unwrap(),
            238 * ext
        );
        assert_eq!(
            size_for(
                Some(&range(MIB.cast_signed(), 6 * MIB.cast_signed())),
                ext,
                0,
                1
            )
            .unwrap(),
            ext
        );
    }

    #[test]
    fn unsatisfiable_ranges() {
        let ext = 4 * MIB;
        let kind = |r| size_for(Some(&r), ext, 0, 1 << 30).unwrap_err().kind();
        assert_eq!(
            kind(range(5 * MIB.cast_signed(), 6 * MIB.cast_signed())),
            Kind::OutOfRange
        );
        assert_eq!(kind(range(10, 5)), Kind::OutOfRange);
        assert_eq!(kind(range(-1, 0)), Kind::InvalidArgument);
        let xfs = size_for(
            Some(&range(0, 100 * MIB.cast_signed())),
            ext,
            300 * MIB,
            1 << 30,
        );
        assert_eq!(xfs.unwrap_err().kind(), Kind::OutOfRange);
    }

    #[test]
    fn existing_size_checks() {
        assert!(satisfies(8 * MIB, Some(&range(5 * MIB.cast_signed(), 0))));
        assert!(!satisfies(8 * MIB, Some(&range(0, 6 * MIB.cast_signed()))));
        assert!(!satisfies(4 * MIB, Some(&range(5 * MIB.cast_signed(), 0))));
        assert!(satisfies(4 * MIB, None));
    }
}
