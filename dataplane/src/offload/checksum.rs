//! The Internet checksum (RFC 1071): a ones'-complement sum of 16-bit
//! big-endian words. It runs over every byte the tunnel carries, so it is
//! written for speed with two of the RFC's observations: 32-bit words may be
//! summed into a 64-bit accumulator and folded at the end (2^16 = 1 modulo
//! 2^16 - 1), and the sum may be taken in the host's byte order and swapped
//! once at the end (section 2.B). That leaves a plain loop of additions,
//! which the compiler vectorises.

/// Adds `data` to `initial`, unfolded. `data` must start at an even offset
/// of what is being summed (every caller sums from a header start).
pub fn sum(data: &[u8], initial: u64) -> u64 {
    let mut acc = 0u64;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    // An odd last byte is the high byte of a zero-padded word.
    acc += u64::from(u32::from_ne_bytes(tail));
    // Back from the host's byte order to network order.
    initial + u64::from(u16::from_be(fold(acc)))
}

/// Folds an accumulated sum to 16 bits (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // The loop leaves at most 16 bits.
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071's example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
    #[test]
    fn matches_the_rfc_example() {
        assert_eq!(fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0)), 0xddf2);
    }

    /// The fast sum against the RFC's definition, on every length and
    /// alignment up to 70 bytes.
    #[test]
    fn agrees_with_the_definition() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 97 + 13) as u8).collect();
        for start in 0..8 {
            for len in 0..70 {
                let d = &data[start..start + len];
                let mut slow = 0u64;
                for pair in d.chunks(2) {
                    slow += u64::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
                }
                assert_eq!(fold(sum(d, 0)), fold(slow), "start {start} len {len}");
            }
        }
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56], 0)), 0x1234 + 0x5600);
        // Splitting a buffer at an even offset sums to the same.
        let data: Vec<u8> = (0..=255u8).collect();
        assert_eq!(fold(sum(&data[6..], sum(&data[..6], 0))), fold(sum(&data, 0)));
    }
}
