//! EFI_TIME and seconds since 1970 (UTC, no leap seconds), both ways, for GetTime/SetTime on a
//! seconds-counting RTC.

use super::EfiError;
use r_efi::efi;

/// EFI_UNSPECIFIED_TIMEZONE.
pub const UNSPECIFIED_TIMEZONE: i16 = 0x07ff;

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u8) -> u8 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The EFI_TIME of `seconds` since 1970 (time zone unspecified, no daylight saving).
pub fn from_unix(seconds: u64) -> efi::Time {
    let (days, rest) = ((seconds / 86_400) as i64, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    efi::Time {
        year: year as u16,
        month: month as u8,
        day: day as u8,
        hour: (rest / 3600) as u8,
        minute: (rest / 60 % 60) as u8,
        second: (rest % 60) as u8,
        pad1: 0,
        nanosecond: 0,
        timezone: UNSPECIFIED_TIMEZONE,
        daylight: 0,
        pad2: 0,
    }
}

/// Seconds since 1970 of a valid EFI_TIME (the fields as SetTime checks them); the time zone
/// is the caller's to keep.
pub fn to_unix(t: &efi::Time) -> Result<u64, EfiError> {
    let valid = (1900..=9999).contains(&t.year)
        && (1..=12).contains(&t.month)
        && t.day >= 1
        && t.day <= days_in_month(t.year as i64, t.month)
        && t.hour < 24
        && t.minute < 60
        && t.second < 60
        && t.nanosecond < 1_000_000_000
        && ((-1440..=1440).contains(&t.timezone) || t.timezone == UNSPECIFIED_TIMEZONE)
        && t.daylight & !3 == 0;
    if !valid {
        return Err(EfiError::InvalidParameter);
    }
    let days = days_from_civil(t.year as i64, t.month as u32, t.day as u32);
    let seconds = days * 86_400 + t.hour as i64 * 3600 + t.minute as i64 * 60 + t.second as i64;
    // Before 1970 the RTC cannot count.
    u64::try_from(seconds).map_err(|_| EfiError::DeviceError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates_both_ways() {
        for (secs, (y, m, d, hh, mm, ss)) in
            [(0u64, (1970, 1, 1, 0, 0, 0)), (951_782_400, (2000, 2, 29, 0, 0, 0)), (1_796_083_199, (2026, 11, 30, 23, 59, 59)), (4_294_967_295, (2106, 2, 7, 6, 28, 15))]
        {
            let t = from_unix(secs);
            assert_eq!((t.year, t.month, t.day, t.hour, t.minute, t.second), (y, m, d, hh, mm, ss), "{secs}");
            assert_eq!(to_unix(&t), Ok(secs));
        }
        let mut day = from_unix(0);
        for secs in (0..200 * 365 * 86_400u64).step_by(86_400 * 17 + 3_601) {
            day = from_unix(secs);
            assert_eq!(to_unix(&day), Ok(secs));
        }
        assert!(day.year > 2100);
    }

    #[test]
    fn invalid_times_are_refused() {
        let good = from_unix(1_796_083_199);
        let cases: [fn(&mut efi::Time); 8] = [
            |t| t.month = 13,
            |t| t.day = 31, // November has 30
            |t| t.hour = 24,
            |t| t.second = 60,
            |t| t.nanosecond = 1_000_000_000,
            |t| t.timezone = 1441,
            |t| t.daylight = 4,
            |t| t.year = 1899,
        ];
        for f in cases {
            let mut t = good;
            f(&mut t);
            assert_eq!(to_unix(&t), Err(EfiError::InvalidParameter));
        }
        let mut leap = good;
        (leap.year, leap.month, leap.day) = (2100, 2, 29);
        assert_eq!(to_unix(&leap), Err(EfiError::InvalidParameter), "2100 is no leap year");
        let mut old = good;
        old.year = 1969;
        assert_eq!(to_unix(&old), Err(EfiError::DeviceError), "before the RTC's epoch");
    }
}
