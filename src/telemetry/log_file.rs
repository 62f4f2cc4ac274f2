//! Optional log file output (`HEALTHCORE_LOG_FILE`): the same JSON lines as stdout, rotated when the
//! file reaches `HEALTHCORE_LOG_FILE_MAX_BYTES` or a new hour/day begins, keeping the newest
//! `HEALTHCORE_LOG_FILE_KEEP` rotated files. It is written by the non-blocking writer's own thread;
//! when that falls behind, lines are dropped rather than making requests wait, and counted
//! (`healthcore_log_lines_dropped_total`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

/// When a file is rotated besides reaching its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Hourly,
    Daily,
    Never,
}

impl Rotation {
    pub fn parse(value: &str) -> Option<Rotation> {
        match value {
            "hourly" => Some(Rotation::Hourly),
            "daily" => Some(Rotation::Daily),
            "never" => Some(Rotation::Never),
            _ => None,
        }
    }

    /// The period a time falls in; a different period means a new file.
    fn period(self, time: DateTime<Utc>) -> String {
        match self {
            Rotation::Hourly => time.format("%Y%m%d%H").to_string(),
            Rotation::Daily => time.format("%Y%m%d").to_string(),
            Rotation::Never => String::new(),
        }
    }
}

/// The file settings, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileConfig {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub rotation: Rotation,
    pub keep: usize,
}

/// Appends to `path`; rotated files are `path.<UTC time>` (sortable), the oldest removed beyond `keep`.
pub struct RotatingFile {
    config: LogFileConfig,
    file: File,
    written: u64,
    period: String,
}

impl RotatingFile {
    pub fn open(config: LogFileConfig) -> io::Result<RotatingFile> {
        if let Some(parent) = config.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&config.path)?;
        let written = file.metadata()?.len();
        let period = config.rotation.period(Utc::now());
        Ok(RotatingFile { config, file, written, period })
    }

    fn rotate(&mut self, now: DateTime<Utc>) -> io::Result<()> {
        self.file.flush()?;
        let rotated = PathBuf::from(format!("{}.{}", self.config.path.display(), now.format("%Y%m%dT%H%M%S%.6fZ")));
        fs::rename(&self.config.path, rotated)?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.config.path)?;
        self.written = 0;
        self.period = self.config.rotation.period(now);
        remove_beyond(&self.config.path, self.config.keep)
    }
}

/// Deletes the oldest rotated files of `path` so that at most `keep` remain.
fn remove_beyond(path: &Path, keep: usize) -> io::Result<()> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return Ok(()) };
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let prefix = format!("{name}.");
    let mut rotated: Vec<PathBuf> = fs::read_dir(folder)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)))
        .collect();
    rotated.sort();
    let excess = rotated.len().saturating_sub(keep);
    for old in &rotated[..excess] {
        fs::remove_file(old)?;
    }
    Ok(())
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let now = Utc::now();
        let new_period = self.config.rotation.period(now) != self.period;
        let full = self.written > 0 && self.written + buf.len() as u64 > self.config.max_bytes;
        if new_period || full {
            self.rotate(now)?;
        }
        self.file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// `healthcore_log_lines_dropped_total`: lines the log file writer dropped because it was behind.
#[derive(Debug, Default)]
pub struct DroppedLogLines;

impl Collector for DroppedLogLines {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counter = ConstCounter::new(super::dropped_log_lines());
        let metric = encoder.encode_descriptor(
            "log_lines_dropped",
            "Log lines the file writer dropped rather than make requests wait (0 without a log file)",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_rotate_at_the_size_limit_and_only_the_newest_are_kept() {
        let folder = std::env::temp_dir().join(format!("hc_logs_{}", uuid::Uuid::new_v4().simple()));
        let path = folder.join("healthcore.log");
        let config = LogFileConfig { path: path.clone(), max_bytes: 100, rotation: Rotation::Never, keep: 2 };
        let mut file = RotatingFile::open(config).unwrap();
        for i in 0..20 {
            file.write_all(format!("{{\"line\":{i:04},\"padding\":\"xxxxxxxxxx\"}}\n").as_bytes()).unwrap();
        }
        file.flush().unwrap();
        let mut names: Vec<String> =
            fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names.len(), 3, "the live file and two rotated ones: {names:?}");
        assert_eq!(names[0], "healthcore.log");
        // Every file stays within the limit, and the newest lines are in the live file.
        for name in &names {
            assert!(fs::metadata(folder.join(name)).unwrap().len() <= 100, "{name}");
        }
        assert!(fs::read_to_string(&path).unwrap().contains("\"line\":0019"));
        // The oldest lines were removed with the oldest files.
        let all: String = names.iter().map(|n| fs::read_to_string(folder.join(n)).unwrap()).collect();
        assert!(!all.contains("\"line\":0000"));
        fs::remove_dir_all(folder).unwrap();
    }

    #[test]
    fn a_new_period_starts_a_new_file() {
        let before = DateTime::parse_from_rfc3339("2026-11-27T10:59:59Z").unwrap().to_utc();
        let after = DateTime::parse_from_rfc3339("2026-11-27T11:00:00Z").unwrap().to_utc();
        assert_ne!(Rotation::Hourly.period(before), Rotation::Hourly.period(after));
        assert_eq!(Rotation::Daily.period(before), Rotation::Daily.period(after));
        assert_eq!(Rotation::Never.period(before), Rotation::Never.period(after));
    }
}
