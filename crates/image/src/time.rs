//! Calendar dates for the Unix timestamps that images record (the
//! manifest's `created_unix`, a seal's time), so that every tool shows
//! them the same way without a date crate.

/// Splits seconds since the Unix epoch into a UTC date and time of day:
/// (year, month, day, hour, minute, second), in the proleptic Gregorian
/// calendar.
pub fn utc_fields(unix_seconds: u64) -> (u64, u64, u64, u64, u64, u64) {
    let second_of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(unix_seconds / 86_400);
    (
        year,
        month,
        day,
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
    )
}

/// Converts a count of days since 1970-01-01 to a (year, month, day) date.
/// Works in 400-year eras of 146,097 days, which repeat exactly in the
/// Gregorian calendar, with years starting on March 1 so that the leap day
/// is the last day of a year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Day 0 of this count is 0000-03-01; 1970-01-01 is day 719,468.
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March: 0 is March, 11 is February.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_fields_known_dates() {
        assert_eq!(utc_fields(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc_fields(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc_fields(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        assert_eq!(utc_fields(4_107_542_399), (2100, 2, 28, 23, 59, 59));
    }
}
