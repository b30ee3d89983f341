//! Memory sizes as people write them: `"512MiB"`, `"1.5 GB"`, `"64M"`, `"4096"`.
//!
//! Binary units (`KiB`, `MiB`, `GiB`, `TiB`) are powers of 1024, decimal ones (`kB`,
//! `MB`, `GB`, `TB`) powers of 1000; a bare `K`/`M`/`G`/`T` is binary, as `ulimit`, `ps`
//! and container limits read it. Case does not matter and a space may separate the
//! number from the unit; a number without a unit is bytes.

use std::fmt;

/// Why a size could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeError {
    /// Not a number followed by a known unit.
    Unreadable(String),
    /// Zero or less, or more than `u64::MAX` bytes.
    OutOfRange(String),
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(text) => write!(
                f,
                "cannot read {text:?} as a memory size: expected a number of bytes or a \
                 number with a unit (KiB, MiB, GiB, TiB, kB, MB, GB, TB, K, M, G, T)"
            ),
            Self::OutOfRange(text) => {
                write!(
                    f,
                    "memory size {text:?} must be at least 1 byte and fit in 64 bits"
                )
            }
        }
    }
}

impl std::error::Error for SizeError {}

fn multiplier(unit: &str) -> Option<f64> {
    const KI: f64 = 1024.0;
    let lower = unit.to_ascii_lowercase();
    Some(match lower.as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => KI,
        "m" | "mib" => KI * KI,
        "g" | "gib" => KI * KI * KI,
        "t" | "tib" => KI * KI * KI * KI,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return None,
    })
}

/// Bytes in `text`.
///
/// # Errors
/// [`SizeError::Unreadable`] for text that is not a size, [`SizeError::OutOfRange`]
/// for a size below one byte or above `u64::MAX`.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unreadable = || SizeError::Unreadable(text.to_owned());
    let value: f64 = number.parse().map_err(|_| unreadable())?;
    let scale = multiplier(unit.trim_start()).ok_or_else(unreadable)?;
    let bytes = (value * scale).floor();
    // u64::MAX as f64 rounds up to 2^64: anything at or above it does not fit.
    #[allow(clippy::cast_precision_loss)]
    let limit = u64::MAX as f64;
    if !(1.0..limit).contains(&bytes) {
        return Err(SizeError::OutOfRange(text.to_owned()));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes as u64)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn reads_binary_decimal_and_bare_units() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("512 mib"), Ok(512 << 20));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("10kB"), Ok(10_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size(" 7 b "), Ok(7));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
    }

    #[test]
    fn rejects_what_is_not_a_size() {
        for text in [
            "",
            "MiB",
            "12 parsecs",
            "-5MiB",
            "1e3",
            "1..2M",
            "0x10",
            "5 M B",
        ] {
            assert!(
                matches!(parse_size(text), Err(SizeError::Unreadable(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn rejects_sizes_out_of_range() {
        for text in ["0", "0.5", "0MiB", "20000000TiB"] {
            assert!(
                matches!(parse_size(text), Err(SizeError::OutOfRange(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn messages_name_the_text() {
        let err = parse_size("lots").unwrap_err().to_string();
        assert!(err.contains("\"lots\"") && err.contains("MiB"), "{err}");
    }
}
