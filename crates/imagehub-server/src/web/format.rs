//! How numbers and times read on a page: pull counts in thousands and millions, push
//! times relative to now with the exact time beside them, a default icon for
//! repositories without one.

/// `1234` → `1.2k`, `5_600_000` → `5.6M`.
pub fn count(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => short(n as f64 / 1e3, "k"),
        _ => short(n as f64 / 1e6, "M"),
    }
}

fn short(value: f64, unit: &str) -> String {
    if value < 10.0 {
        format!("{:.1}{unit}", (value * 10.0).floor() / 10.0)
    } else {
        format!("{}{unit}", value.floor())
    }
}

/// Bytes in the largest unit that keeps a number below 1,000: `1.2 MB`, `870 kB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ if value < 10.0 => format!("{value:.1} {}", UNITS[unit]),
        _ => format!("{value:.0} {}", UNITS[unit]),
    }
}

/// A moment as a page shows it: relative, with the exact time for `title` and `datetime`.
pub struct When {
    pub relative: String,
    pub exact: String,
}

/// `then` (Unix seconds) relative to `now`: "just now", "5 minutes ago", "3 days ago".
pub fn when(then: i64, now: i64) -> When {
    let ago = (now - then).max(0);
    let (n, unit) = match ago {
        0..60 => return When { relative: "just now".into(), exact: crate::api::timestamp(then) },
        60..3_600 => (ago / 60, "minute"),
        3_600..86_400 => (ago / 3_600, "hour"),
        86_400..2_592_000 => (ago / 86_400, "day"),
        2_592_000..31_536_000 => (ago / 2_592_000, "month"),
        _ => (ago / 31_536_000, "year"),
    };
    let plural = if n == 1 { "" } else { "s" };
    When { relative: format!("{n} {unit}{plural} ago"), exact: crate::api::timestamp(then) }
}

/// An RFC 3339 time (as image configs and the API write them) relative to `now`.
pub fn when_rfc3339(text: &str, now: i64) -> Option<When> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| when(t.unix_timestamp(), now))
}

/// A platform as pages write it: `linux/arm64/v8`, `linux/amd64`.
pub fn platform_label(os: &str, architecture: &str, variant: Option<&str>) -> String {
    match variant {
        Some(variant) => format!("{os}/{architecture}/{variant}"),
        None => format!("{os}/{architecture}"),
    }
}

/// The current time in Unix seconds, what [`when`] measures against.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The first 12 hex digits of a digest, as listings show it.
pub fn short_digest(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    hex.chars().take(12).collect()
}

/// The letters and colour of a repository's default icon: the first letter of its last
/// name component (or of its namespace), and one of eight hues from its name.
pub fn default_icon(name: &str) -> (String, u8) {
    let last = name.rsplit('/').next().unwrap_or(name);
    let initial = last.chars().find(|c| c.is_alphanumeric()).unwrap_or('?');
    let hue = name.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % 8;
    (initial.to_string(), hue as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_short() {
        for (n, shown) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1.0k"),
            (1_250, "1.2k"),
            (45_600, "45k"),
            (2_500_000, "2.5M"),
            (73_000_000, "73M"),
        ] {
            assert_eq!(count(n), shown, "{n}");
        }
    }

    #[test]
    fn times_read_relative_with_the_exact_time_beside() {
        let now = 1_700_000_000;
        for (ago, shown) in [
            (5, "just now"),
            (60, "1 minute ago"),
            (7_200, "2 hours ago"),
            (86_400 * 3, "3 days ago"),
            (86_400 * 61, "2 months ago"),
            (86_400 * 800, "2 years ago"),
        ] {
            assert_eq!(when(now - ago, now).relative, shown, "{ago}");
        }
        assert_eq!(when(now + 30, now).relative, "just now", "a clock a little ahead is no error");
        assert_eq!(when(now, now).exact, "2023-11-14T22:13:20Z");
    }

    #[test]
    fn sizes_read_in_human_units() {
        for (n, shown) in [
            (0, "0 B"),
            (999, "999 B"),
            (1_000, "1.0 kB"),
            (12_345_678, "12 MB"),
            (1_500_000_000, "1.5 GB"),
        ] {
            assert_eq!(bytes(n), shown, "{n}");
        }
    }

    #[test]
    fn default_icons_take_the_last_component() {
        assert_eq!(default_icon("acme/redis").0, "r");
        assert_eq!(default_icon("acme/team/_x9").0, "x");
        assert!(default_icon("acme/redis").1 < 8);
        assert_eq!(default_icon("a/b"), default_icon("a/b"), "stable");
    }
}
