//! Where a mirror is in a container's output, and when the engine logged it:
//! what a checkpoint records and a resumed mirror skips.

use std::time::Duration;

/// How far a container's output has been mirrored: lines seen per stream.
/// Lines are counted the way [`Lines`] splits them, so a reader of the
/// engine's log can skip exactly what an earlier mirror already logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub stdout: u64,
    pub stderr: u64,
    /// Per stream, a fingerprint of the line the counts started from: a
    /// re-read log that still starts with it lost nothing to rotation, so
    /// its counts line up with these exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_stdout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_stderr: Option<u64>,
}

/// One of a container's two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    Stdout,
    Stderr,
}

impl Position {
    /// Counts one more line on `stream` (fingerprinting the first) and
    /// returns its number.
    pub(super) fn count(&mut self, stream: Stream, text: &str) -> u64 {
        let (seen, first) = match stream {
            Stream::Stdout => (&mut self.stdout, &mut self.first_stdout),
            Stream::Stderr => (&mut self.stderr, &mut self.first_stderr),
        };
        *seen += 1;
        if *seen == 1 {
            *first = Some(fingerprint(text));
        }
        *seen
    }

    pub(super) fn seen(&self, stream: Stream) -> u64 {
        match stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }

    pub(super) fn first(&self, stream: Stream) -> Option<u64> {
        match stream {
            Stream::Stdout => self.first_stdout,
            Stream::Stderr => self.first_stderr,
        }
    }
}

/// Stable across versions and processes (a checkpoint outlives both).
pub(super) fn fingerprint(text: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head)
}

/// What an earlier mirror already logged, when re-reading the engine's
/// timestamped log after a restart: a line is skipped if its count is within
/// `at` and either the log still starts with the line those counts started
/// from, or the engine logged it by `saved_at` (when that position was
/// written down). The count alone breaks once the log driver rotates old
/// files away: then the time decides. The time alone misses a line still in
/// flight when the position was taken, and repeats one the engine stamped a
/// moment after the live mirror (attached, not reading the log) counted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    pub at: Position,
    /// Since the Unix epoch.
    pub saved_at: Duration,
}

impl Skip {
    /// Everything logged so far: for a running container with no checkpoint.
    pub fn until_now() -> Skip {
        Skip {
            at: Position {
                stdout: u64::MAX,
                stderr: u64::MAX,
                ..Position::default()
            },
            saved_at: unix_now(),
        }
    }
}

pub fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
/// A timestamped log frame starts with the engine's RFC 3339 time and a
/// space: takes it off and records it in `stamp`.
pub(super) fn unstamp<'a>(
    frame: &'a [u8],
    stamped: bool,
    stamp: &mut Option<Duration>,
) -> &'a [u8] {
    if !stamped {
        return frame;
    }
    let Some(space) = frame.iter().position(|&b| b == b' ') else {
        return frame;
    };
    match std::str::from_utf8(&frame[..space])
        .ok()
        .and_then(parse_rfc3339)
    {
        Some(time) => {
            *stamp = Some(time);
            &frame[space + 1..]
        }
        None => frame,
    }
}

/// `2026-11-23T11:24:04.123456789Z` (UTC, as the engine writes it) → time
/// since the Unix epoch.
fn parse_rfc3339(text: &str) -> Option<Duration> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut hms = clock.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || fraction.len() > 9 {
        return None;
    }
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    // Days from 1970-01-01 in the proleptic Gregorian calendar.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(Duration::new(u64::try_from(seconds).ok()?, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_timestamps_parse() {
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:01.5Z"),
            Some(Duration::new(1, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T11:24:04.123456789Z"),
            Some(Duration::new(1_795_433_044, 123_456_789))
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(Duration::from_secs(1_709_164_800))
        );
        for bad in [
            "2026-11-23 11:24:04Z",
            "2026-13-01T00:00:00Z",
            "x",
            "2026-11-23T11:24:04",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
