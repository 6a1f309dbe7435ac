//! E.164 phone numbers: `+`, a country code and the subscriber number, 15 digits at
//! most. Spaces, dashes, dots and parentheses people type are dropped; anything else
//! is refused with the reason.

/// The number in E.164 form (`+33612345678`), or why it is not one.
pub fn e164(number: &str) -> Result<String, String> {
    let trimmed = number.trim();
    let Some(rest) = trimmed.strip_prefix('+') else {
        return Err(format!(
            "`{number}` is not an E.164 phone number: it must start with `+` and the country code"
        ));
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            other => {
                return Err(format!(
                    "`{number}` is not an E.164 phone number: `{other}` is not a digit"
                ));
            }
        }
    }
    if digits.starts_with('0') {
        return Err(format!(
            "`{number}` is not an E.164 phone number: country codes do not start with 0"
        ));
    }
    if !(7..=15).contains(&digits.len()) {
        return Err(format!(
            "`{number}` is not an E.164 phone number: it has {} digits, not 7 to 15",
            digits.len()
        ));
    }
    Ok(format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_numbers_are_normalised() {
        assert_eq!(e164("+33612345678").as_deref(), Ok("+33612345678"));
        assert_eq!(e164(" +1 (415) 555-0100 ").as_deref(), Ok("+14155550100"));
        assert_eq!(e164("+44.20.7946.0958").as_deref(), Ok("+442079460958"));
    }

    #[test]
    fn invalid_numbers_say_why() {
        for (number, why) in [
            ("0612345678", "must start with `+`"),
            ("+33 6 12 ab", "`a` is not a digit"),
            ("+0612345678", "do not start with 0"),
            ("+123", "has 3 digits"),
            ("+1234567890123456", "has 16 digits"),
            ("", "must start with `+`"),
        ] {
            let error = e164(number).expect_err(number);
            assert!(error.contains(why), "{number}: {error}");
        }
    }
}
