//! Numbers with unit suffixes, exactly as drbdadm reads them.
//!
//! A value is decimal digits with at most one suffix: `k`/`K` (KiB), `m`/`M`
//! (MiB), `g`/`G` (GiB) or `s` (512-byte sectors). Without a suffix the number
//! is already in the option's default unit. With one, it is converted to the
//! default unit, rounding up when the default unit is the larger one (drbdadm's
//! `new_strtoll`): `rate 40M` is 40960 KiB, `c-fill-target 1k` is 2 sectors.

/// The unit an option's number is expressed in when no suffix is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A plain count, or bytes (drbdadm's scale `1`).
    One,
    /// KiB (drbdadm's scale `k`).
    KiB,
    /// 512-byte sectors (drbdadm's scale `s`).
    Sectors,
}

impl Unit {
    /// log2 of the unit in bytes.
    fn shift(self) -> i32 {
        match self {
            Unit::One => 0,
            Unit::KiB => 10,
            Unit::Sectors => 9,
        }
    }

    /// The suffix drbdadm prints after a range in this unit ("" for plain).
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::One => "",
            Unit::KiB => "k",
            Unit::Sectors => "s",
        }
    }
}

/// Why a number could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberError {
    /// Not digits with an optional single unit letter.
    Invalid,
    /// A unit letter other than k, K, m, M, g, G, s.
    BadUnit(char),
    /// Does not fit in 64 bits after conversion.
    Overflow,
}

impl NumberError {
    /// A sentence for error messages.
    pub fn describe(&self) -> String {
        match self {
            NumberError::Invalid => {
                "expected a number with an optional unit k, M, G or s".to_string()
            }
            NumberError::BadUnit(c) => format!("unknown unit '{c}' (use k, M, G or s)"),
            NumberError::Overflow => "number too large".to_string(),
        }
    }
}

/// Reads `text` and returns it in `unit`.
pub fn parse_scaled(text: &str, unit: Unit) -> Result<u64, NumberError> {
    let digits_end = text
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(text.len(), |(i, _)| i);
    if digits_end == 0 {
        return Err(NumberError::Invalid);
    }
    let (digits, rest) = text.split_at(digits_end);
    let value: u64 = digits.parse().map_err(|_| NumberError::Overflow)?;
    let mut chars = rest.chars();
    let suffix_shift = match chars.next() {
        None => return Ok(value),
        Some('k' | 'K') => 10,
        Some('m' | 'M') => 20,
        Some('g' | 'G') => 30,
        Some('s') => 9,
        Some(c) => return Err(NumberError::BadUnit(c)),
    };
    if chars.next().is_some() {
        return Err(NumberError::Invalid);
    }
    let shift = suffix_shift - unit.shift();
    if shift >= 0 {
        let shift = shift.unsigned_abs();
        if value > (u64::MAX >> shift) {
            return Err(NumberError::Overflow);
        }
        Ok(value << shift)
    } else {
        let shift = shift.unsigned_abs();
        let round = (1u64 << shift) - 1;
        let rounded = value.checked_add(round).ok_or(NumberError::Overflow)?;
        Ok(rounded >> shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_like_drbdadm() {
        assert_eq!(parse_scaled("40M", Unit::KiB), Ok(40 * 1024));
        assert_eq!(parse_scaled("630M", Unit::KiB), Ok(645_120));
        assert_eq!(parse_scaled("250", Unit::KiB), Ok(250));
        assert_eq!(parse_scaled("512k", Unit::One), Ok(524_288));
        assert_eq!(parse_scaled("1G", Unit::Sectors), Ok(2 * 1024 * 1024));
        assert_eq!(parse_scaled("1s", Unit::KiB), Ok(1), "rounds up");
        assert_eq!(
            parse_scaled("3s", Unit::KiB),
            Ok(2),
            "1.5 KiB rounds up to 2"
        );
        assert_eq!(parse_scaled("1k", Unit::Sectors), Ok(2));
    }

    #[test]
    fn rejects_malformed_numbers() {
        assert_eq!(parse_scaled("", Unit::One), Err(NumberError::Invalid));
        assert_eq!(parse_scaled("M", Unit::One), Err(NumberError::Invalid));
        assert_eq!(
            parse_scaled("12x", Unit::One),
            Err(NumberError::BadUnit('x'))
        );
        assert_eq!(parse_scaled("12MM", Unit::One), Err(NumberError::Invalid));
        assert_eq!(parse_scaled("-1", Unit::One), Err(NumberError::Invalid));
        assert_eq!(
            parse_scaled("99999999999999999999", Unit::One),
            Err(NumberError::Overflow)
        );
        assert_eq!(
            parse_scaled("18446744073709551615G", Unit::One),
            Err(NumberError::Overflow)
        );
    }
}
