//! Phone numbers of contacts: normalisation to E.164 with a default country for national numbers,
//! and the timezone a number's calling code (and, for the North American plan and a few large
//! countries, its area code) points to. The timezone is what a campaign's calling window is
//! evaluated in when a contact does not name one.

use chrono_tz::Tz;

/// Countries a default may name: ISO code, calling code, national trunk prefix, national
/// significant number lengths, timezone.
const COUNTRIES: &[(&str, &str, &str, &[usize], Tz)] = &[
    ("IN", "91", "0", &[10], chrono_tz::Asia::Kolkata),
    ("US", "1", "1", &[10], chrono_tz::America::New_York),
    ("CA", "1", "1", &[10], chrono_tz::America::Toronto),
    ("GB", "44", "0", &[9, 10], chrono_tz::Europe::London),
    ("AU", "61", "0", &[9], chrono_tz::Australia::Sydney),
    ("AE", "971", "0", &[8, 9], chrono_tz::Asia::Dubai),
    ("SG", "65", "", &[8], chrono_tz::Asia::Singapore),
    ("DE", "49", "0", &[10, 11], chrono_tz::Europe::Berlin),
    ("FR", "33", "0", &[9], chrono_tz::Europe::Paris),
    ("BR", "55", "0", &[10, 11], chrono_tz::America::Sao_Paulo),
    ("MX", "52", "", &[10], chrono_tz::America::Mexico_City),
    ("ZA", "27", "0", &[9], chrono_tz::Africa::Johannesburg),
    ("NG", "234", "0", &[10], chrono_tz::Africa::Lagos),
    ("KE", "254", "0", &[9], chrono_tz::Africa::Nairobi),
    ("PH", "63", "0", &[10], chrono_tz::Asia::Manila),
    ("ID", "62", "0", &[9, 10, 11, 12], chrono_tz::Asia::Jakarta),
    ("JP", "81", "0", &[9, 10], chrono_tz::Asia::Tokyo),
    ("ES", "34", "", &[9], chrono_tz::Europe::Madrid),
    ("IT", "39", "", &[9, 10], chrono_tz::Europe::Rome),
    ("NL", "31", "0", &[9], chrono_tz::Europe::Amsterdam),
    ("SA", "966", "0", &[9], chrono_tz::Asia::Riyadh),
    ("PK", "92", "0", &[10], chrono_tz::Asia::Karachi),
    ("BD", "880", "0", &[10], chrono_tz::Asia::Dhaka),
    ("NZ", "64", "0", &[8, 9, 10], chrono_tz::Pacific::Auckland),
];

/// North American area codes of the Central, Mountain and Pacific zones (the rest of the plan's
/// numbers default to Eastern). Partial: the most populous codes of each zone.
const NANP_AREAS: &[(&str, Tz)] = &[
    ("206", chrono_tz::America::Los_Angeles),
    ("213", chrono_tz::America::Los_Angeles),
    ("310", chrono_tz::America::Los_Angeles),
    ("323", chrono_tz::America::Los_Angeles),
    ("408", chrono_tz::America::Los_Angeles),
    ("415", chrono_tz::America::Los_Angeles),
    ("425", chrono_tz::America::Los_Angeles),
    ("503", chrono_tz::America::Los_Angeles),
    ("510", chrono_tz::America::Los_Angeles),
    ("604", chrono_tz::America::Vancouver),
    ("619", chrono_tz::America::Los_Angeles),
    ("650", chrono_tz::America::Los_Angeles),
    ("702", chrono_tz::America::Los_Angeles),
    ("714", chrono_tz::America::Los_Angeles),
    ("818", chrono_tz::America::Los_Angeles),
    ("858", chrono_tz::America::Los_Angeles),
    ("916", chrono_tz::America::Los_Angeles),
    ("949", chrono_tz::America::Los_Angeles),
    ("303", chrono_tz::America::Denver),
    ("720", chrono_tz::America::Denver),
    ("801", chrono_tz::America::Denver),
    ("403", chrono_tz::America::Edmonton),
    ("480", chrono_tz::America::Phoenix),
    ("602", chrono_tz::America::Phoenix),
    ("520", chrono_tz::America::Phoenix),
    ("312", chrono_tz::America::Chicago),
    ("773", chrono_tz::America::Chicago),
    ("214", chrono_tz::America::Chicago),
    ("469", chrono_tz::America::Chicago),
    ("512", chrono_tz::America::Chicago),
    ("713", chrono_tz::America::Chicago),
    ("832", chrono_tz::America::Chicago),
    ("210", chrono_tz::America::Chicago),
    ("612", chrono_tz::America::Chicago),
    ("314", chrono_tz::America::Chicago),
    ("504", chrono_tz::America::Chicago),
    ("615", chrono_tz::America::Chicago),
    ("414", chrono_tz::America::Chicago),
    ("808", chrono_tz::Pacific::Honolulu),
    ("907", chrono_tz::America::Anchorage),
];

/// Why a number is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone is empty")]
    Empty,
    #[error("phone must contain only digits, spaces, dashes, dots, parentheses and a leading +")]
    Characters,
    #[error("phone must be in E.164 format (+ and 8 to 15 digits), or a national number of the default country")]
    Length,
    #[error("unknown default country {0:?}")]
    UnknownCountry(String),
}

/// Returns the E.164 form of `raw`: international numbers (`+…` or `00…`) as they are, national
/// numbers of `default_country` (an ISO code such as `IN`) with its calling code and without its
/// trunk prefix.
pub fn normalise(raw: &str, default_country: &str) -> Result<String, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    let plus = trimmed.starts_with('+');
    let body = if plus { &trimmed[1..] } else { trimmed };
    if !body.chars().all(|c| c.is_ascii_digit() || " -.()".contains(c)) {
        return Err(PhoneError::Characters);
    }
    let digits: String = body.chars().filter(char::is_ascii_digit).collect();
    let international = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_string()
    } else {
        let (_, code, trunk, lengths, _) = COUNTRIES
            .iter()
            .find(|(iso, ..)| iso.eq_ignore_ascii_case(default_country))
            .ok_or_else(|| PhoneError::UnknownCountry(default_country.to_string()))?;
        let national = if !trunk.is_empty() && !lengths.contains(&digits.len()) {
            digits.strip_prefix(trunk).unwrap_or(&digits).to_string()
        } else {
            digits.clone()
        };
        if lengths.contains(&national.len()) {
            format!("{code}{national}")
        } else if digits.starts_with(code) && (8..=15).contains(&digits.len()) {
            // Already international, written without the +.
            digits
        } else {
            return Err(PhoneError::Length);
        }
    };
    if !(8..=15).contains(&international.len()) || international.starts_with('0') {
        return Err(PhoneError::Length);
    }
    Ok(format!("+{international}"))
}

/// Returns the timezone an E.164 number most likely rings in, from its calling code (and area
/// code where the prefix says it), or `None` for a country not in the table.
pub fn timezone_of(e164: &str) -> Option<Tz> {
    let digits = e164.strip_prefix('+').unwrap_or(e164);
    if let Some(national) = digits.strip_prefix('1') {
        let area = national.get(..3)?;
        return Some(
            NANP_AREAS.iter().find(|(code, _)| *code == area).map_or(chrono_tz::America::New_York, |(_, tz)| *tz),
        );
    }
    COUNTRIES
        .iter()
        .filter(|(_, code, ..)| digits.starts_with(code))
        .max_by_key(|(_, code, ..)| code.len())
        .map(|(.., tz)| *tz)
}

/// Returns true when `code` names a country the normaliser knows.
pub fn is_known_country(code: &str) -> bool {
    COUNTRIES.iter().any(|(iso, ..)| iso.eq_ignore_ascii_case(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised_to_e164() {
        let table = [
            ("+91 98765 43210", "US", Ok("+919876543210")),
            ("098765 43210", "IN", Ok("+919876543210")),
            ("9876543210", "IN", Ok("+919876543210")),
            ("919876543210", "IN", Ok("+919876543210")),
            ("0091 9876543210", "US", Ok("+919876543210")),
            ("(415) 555-0100", "US", Ok("+14155550100")),
            ("1-415-555-0100", "US", Ok("+14155550100")),
            ("020 7946 0958", "GB", Ok("+442079460958")),
            ("", "IN", Err(PhoneError::Empty)),
            ("98765x43210", "IN", Err(PhoneError::Characters)),
            ("12345", "IN", Err(PhoneError::Length)),
            ("+1234567890123456", "IN", Err(PhoneError::Length)),
            ("9876543210", "XX", Err(PhoneError::UnknownCountry("XX".into()))),
        ];
        for (raw, country, expected) in table {
            assert_eq!(normalise(raw, country), expected.map(str::to_string), "{raw:?} in {country}");
        }
    }

    #[test]
    fn timezones_follow_the_calling_code_and_the_area_code() {
        let table = [
            ("+919876543210", Some(chrono_tz::Asia::Kolkata)),
            ("+14155550100", Some(chrono_tz::America::Los_Angeles)),
            ("+13125550100", Some(chrono_tz::America::Chicago)),
            ("+12125550100", Some(chrono_tz::America::New_York)),
            ("+442079460958", Some(chrono_tz::Europe::London)),
            ("+97150123456", Some(chrono_tz::Asia::Dubai)),
            ("+9999999999", None),
        ];
        for (number, expected) in table {
            assert_eq!(timezone_of(number), expected, "{number}");
        }
    }
}
