//! Durations on the command line: `30` (seconds, as in Bytewax) or humantime (`30s`, `5m`, `100ms`).

use std::time::Duration;

/// Parses `30` as thirty seconds, and anything else as a humantime duration (`30s`, `5m`,
/// `1h 30m`, `100ms`). Zero is a duration too: `-s 0` closes an epoch after every batch
/// and `-b 0` keeps no superseded snapshot, as in Bytewax.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = if let Ok(seconds) = text.parse::<u64>() {
        Duration::from_secs(seconds)
    } else if let Ok(seconds) = text.parse::<f64>() {
        Duration::try_from_secs_f64(seconds).map_err(|e| format!("'{text}' is not a duration: {e}"))?
    } else {
        humantime::parse_duration(text).map_err(|e| {
            format!("'{text}' is not a duration ({e}); write seconds (`30`) or a unit (`30s`, `5m`, `100ms`)")
        })?
    };
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_numbers_are_seconds() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration(" 2 "), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn units_are_humantime() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn zero_is_a_duration() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn nonsense_and_negative_are_refused() {
        let err = parse_duration("soon").unwrap_err();
        assert!(err.contains("'soon' is not a duration"), "{err}");
        assert!(parse_duration("-3").is_err());
        assert!(parse_duration("").is_err());
    }
}
