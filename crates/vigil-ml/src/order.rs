//! A total order on `f32` in which `NaN` sorts below every number, shared by tree training
//! and the rank-based metrics.

/// Maps `x` to a `u32` whose natural order is `NaN < -inf < … < -0.0 = 0.0 < … < inf`.
///
/// Every `NaN` maps to 0 and both zeros map to the same key, so equal keys mean "compare
/// equal" (or both missing).
pub(crate) fn order_key(x: f32) -> u32 {
    if x.is_nan() {
        return 0;
    }
    // Adding +0.0 turns -0.0 into +0.0 and leaves every other value unchanged.
    let bits = (x + 0.0).to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

#[cfg(test)]
mod tests {
    use super::order_key;

    #[test]
    fn orders_nan_first_and_merges_zeros() {
        let ordered = [
            f32::NAN,
            f32::NEG_INFINITY,
            f32::MIN,
            -1.5,
            -f32::MIN_POSITIVE,
            0.0,
            f32::MIN_POSITIVE,
            2.0,
            f32::MAX,
            f32::INFINITY,
        ];
        for pair in ordered.windows(2) {
            assert!(order_key(pair[0]) < order_key(pair[1]), "{pair:?}");
        }
        assert_eq!(order_key(-0.0), order_key(0.0));
        assert_eq!(order_key(-f32::NAN), 0);
    }
}
